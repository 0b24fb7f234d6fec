export * from "./activation-estimate.js";
export * from "./limits.js";
export * from "./resolved-spec.js";
export * from "./validate-spec.js";
