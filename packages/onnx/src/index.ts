// @dmesh/onnx: ONNX models read, written, indexed, patched and run, for every service.
export * from "./encode-onnx-model.js";
export type { ExternalRange } from "./external-data.js";
export * from "./float16.js";
export * from "./model-cache.js";
export * from "./model-contract-error.js";
export * from "./model-directory.js";
export * from "./onnx-graph-io.js";
export * from "./onnx-model.js";
export * from "./onnx-session.js";
export * from "./patched-session.js";
export * from "./tensor-data-type.js";
export * from "./weight-index.js";
