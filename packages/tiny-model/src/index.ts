export * from "./adapters/index.js";
export type { TextEncoderDims, TinyModelDims, UnetDims, VaeDims } from "./dims.js";
export {
  type GeneratedModelManifest,
  MANIFEST_FILE,
  type ManifestFile,
  ModelDirectoryError,
  readManifest,
  type WriteModelDirectoryOptions,
} from "./generated-directory.js";
export type { GeneratedFile, ModelIo, ModelSignature } from "./generated-files.js";
export {
  defaultTinyModelOptions,
  resolveTinyModelOptions,
  type TinyModelKind,
  TinyModelOptionError,
  type TinyModelOptions,
} from "./options.js";
export {
  CONTROLNET_ARTIFACT,
  resolveTinyControlNetOptions,
  type TinyControlNetManifest,
  type TinyControlNetOptions,
  writeTinyControlNet,
} from "./write-tiny-controlnet.js";
export {
  DIFFUSION_ARTIFACT,
  ensureTinyModel,
  findTinyModel,
  generateTinyModel,
  type TinyModelManifest,
  writeTinyModel,
} from "./write-tiny-model.js";
export {
  resolveTinySafetyClassifierOptions,
  type TinySafetyClassifierManifest,
  type TinySafetyClassifierOptions,
  writeTinySafetyClassifier,
} from "./write-tiny-safety-classifier.js";
export {
  resolveTinyUpscalerOptions,
  type TinyUpscalerManifest,
  type TinyUpscalerOptions,
  writeTinyUpscaler,
} from "./write-tiny-upscaler.js";
export {
  resolveTinyVaeOptions,
  type TinyVaeManifest,
  type TinyVaeOptions,
  writeTinyVae,
} from "./write-tiny-vae.js";
