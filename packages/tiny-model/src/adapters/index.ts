export { ADAPTER_USAGE, isAdapterCommand, runAdapterCommand } from "./adapter-cli.js";
export {
  type ModuleGroup,
  type TinyComponent,
  type TinyModule,
  tinyAdapterDims,
  tinyAdapterModules,
} from "./tiny-adapter-modules.js";
export {
  type TinyEmbeddingOptions,
  tinyEmbeddingTensors,
  writeTinyEmbedding,
} from "./write-tiny-embedding.js";
export {
  TINY_LORA_LAYOUTS,
  type TinyLoraEntry,
  type TinyLoraLayout,
  TinyLoraOptionError,
  type TinyLoraOptions,
  tinyLoraEntries,
  tinyLoraTensors,
  writeTinyLora,
} from "./write-tiny-lora.js";
