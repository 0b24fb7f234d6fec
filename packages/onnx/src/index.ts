export * from "./encode-onnx-model.js";
export * from "./onnx-model.js";
export * from "./model-contract-error.js";
export * from "./tensor-data-type.js";
export * from "./float16.js";
