export * from "./clip-tokenizer.js";
export * from "./prompt-attention.js";
export * from "./prompt-emphasis.js";
export * from "./prompt-weighting.js";
export * from "./tokenizer-errors.js";
export { readClipTokenizerDefinition } from "./tokenizer-files.js";
