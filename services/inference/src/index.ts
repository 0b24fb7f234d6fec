export { inferenceSettings } from "./config.js";
export { type InferenceConfig, startInference } from "./server.js";
