export {
  DTYPE_SIZES,
  type Dtype,
  FLOAT_DTYPES,
  type FloatDtype,
  fromFloat32,
  isFloatDtype,
  toFloat32,
  type WritableDtype,
} from "./dtypes.js";
export { looksPickled, refusePickledPath } from "./pickle-guard.js";
export { SafetensorsError } from "./safetensors-error.js";
export {
  decodeSafetensors,
  elementCount,
  type FloatTensor,
  type OpenOptions,
  openSafetensors,
  type SafetensorsFile,
  tensorBytes,
} from "./safetensors-file.js";
export {
  DEFAULT_MAX_HEADER_BYTES,
  type HeaderLimits,
  LENGTH_PREFIX_BYTES,
  METADATA_KEY,
  type SafetensorsHeader,
  type TensorInfo,
} from "./safetensors-header.js";
export { encodeSafetensors, type TensorToWrite, writeSafetensors } from "./safetensors-writer.js";
