export * from "./activation-estimate.js";
export * from "./bounded-strings.js";
export * from "./limits.js";
export * from "./lora-tags.js";
export * from "./resolved-spec.js";
export * from "./scheduler-table.js";
export * from "./validate-scheduler.js";
export * from "./validate-spec.js";
