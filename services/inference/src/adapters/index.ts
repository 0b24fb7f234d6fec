export { AdapterCatalog, type AdapterDirs, type ListedAdapter, type ListedKind } from "./adapter-catalog.js";
export { AdapterFileError } from "./adapter-errors.js";
export {
  type AdapterHash,
  a1111ModelHash,
  embeddingHash,
  loraHash,
  SHORT_HASH_LENGTH,
  sha256OfFile,
} from "./adapter-hash.js";
export { type AdapterInfo, type AdapterKind, describeAdapterFile, loraFamily } from "./adapter-listing.js";
export {
  ADAPTER_COMPONENTS,
  type AdapterComponent,
  type AdapterTarget,
  type ComponentModules,
  type ModuleWeight,
} from "./adapter-target.js";
export {
  CONTROLNET_FILE,
  type ControlNetInfo,
  controlNetFamily,
  describeControlNet,
} from "./controlnet-listing.js";
export {
  type BaseFamily,
  type EmbeddingFile,
  embeddingVectorsFor,
  MAX_EMBEDDING_VECTORS,
  readEmbeddingFile,
  textEncoderWidths,
  type VectorSet,
} from "./embedding-file.js";
export {
  createEmbeddingMatcher,
  type EmbeddingMatch,
  type EmbeddingMatcher,
  type NamedTokens,
} from "./embedding-matcher.js";
export { addScaledProduct, type DeltaOptions, loraDeltas, type ModuleDelta } from "./lora-deltas.js";
export { groupLoraKeys, type LoraLayout, type LoraModuleKeys } from "./lora-keys.js";
export {
  type LoraPlan,
  type LoraRequest,
  type LoraTerm,
  type PlannedModule,
  planLoraSet,
} from "./lora-plan.js";
export { createModuleIndex, type ModuleIndex, type Resolution } from "./module-index.js";
export { PEFT_METADATA_KEY, type PeftScaling, peftScaling } from "./peft-metadata.js";
export { sgmModulePath, type UnetLayout, unetLayoutOf } from "./sgm-unet-names.js";
