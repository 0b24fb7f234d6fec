import { endianness } from "node:os";
import { TensorProto_DataType as DataType } from "@dmesh/contracts/onnx/onnx_pb.js";
import { fromBfloat16, fromFloat16, toFloat16 } from "./float16.js";

if (endianness() !== "LE") {
  // raw_data and external data are little-endian; typed arrays use the host's order.
  throw new Error("@dmesh/onnx: tensor bytes are read as typed arrays, which needs a little-endian host");
}

/** The tensor element types whose bytes this package reads and writes (onnxruntime's names). */
export type TensorDataType =
  | "float32"
  | "float16"
  | "bfloat16"
  | "float64"
  | "int8"
  | "uint8"
  | "int16"
  | "uint16"
  | "int32"
  | "uint32"
  | "int64"
  | "uint64"
  | "bool";

/** Tensor values as typed arrays: float16 and bfloat16 are their bit patterns, bool is 0/1 bytes. */
export type TensorArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

interface TypeInfo {
  readonly name: TensorDataType;
  readonly bytes: number;
  readonly array: (buffer: ArrayBuffer, byteOffset: number, length: number) => TensorArray;
}

const TYPES = new Map<DataType, TypeInfo>([
  [DataType.FLOAT, { name: "float32", bytes: 4, array: (b, o, n) => new Float32Array(b, o, n) }],
  [DataType.FLOAT16, { name: "float16", bytes: 2, array: (b, o, n) => new Uint16Array(b, o, n) }],
  [DataType.BFLOAT16, { name: "bfloat16", bytes: 2, array: (b, o, n) => new Uint16Array(b, o, n) }],
  [DataType.DOUBLE, { name: "float64", bytes: 8, array: (b, o, n) => new Float64Array(b, o, n) }],
  [DataType.INT8, { name: "int8", bytes: 1, array: (b, o, n) => new Int8Array(b, o, n) }],
  [DataType.UINT8, { name: "uint8", bytes: 1, array: (b, o, n) => new Uint8Array(b, o, n) }],
  [DataType.INT16, { name: "int16", bytes: 2, array: (b, o, n) => new Int16Array(b, o, n) }],
  [DataType.UINT16, { name: "uint16", bytes: 2, array: (b, o, n) => new Uint16Array(b, o, n) }],
  [DataType.INT32, { name: "int32", bytes: 4, array: (b, o, n) => new Int32Array(b, o, n) }],
  [DataType.UINT32, { name: "uint32", bytes: 4, array: (b, o, n) => new Uint32Array(b, o, n) }],
  [DataType.INT64, { name: "int64", bytes: 8, array: (b, o, n) => new BigInt64Array(b, o, n) }],
  [DataType.UINT64, { name: "uint64", bytes: 8, array: (b, o, n) => new BigUint64Array(b, o, n) }],
  [DataType.BOOL, { name: "bool", bytes: 1, array: (b, o, n) => new Uint8Array(b, o, n) }],
]);
const BY_NAME = new Map([...TYPES].map(([code, info]) => [info.name, code]));

/** The name of an ONNX data type code, or undefined for one whose bytes this package cannot read. */
export function dataTypeName(code: number): TensorDataType | undefined {
  return TYPES.get(code)?.name;
}

/** The ONNX data type code of a name. */
export function dataTypeCode(name: TensorDataType): DataType {
  return BY_NAME.get(name) as DataType;
}

/** Bytes per element. */
export function elementBytes(name: TensorDataType): number {
  return TYPES.get(dataTypeCode(name))?.bytes ?? 0;
}

/** Elements of a tensor of these dims (1 for a scalar). */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** A typed array over little-endian bytes (copied when they are not aligned for the type). */
export function arrayFromBytes(name: TensorDataType, bytes: Uint8Array): TensorArray {
  const info = TYPES.get(dataTypeCode(name)) as TypeInfo;
  const aligned =
    bytes.byteOffset % info.bytes === 0 ? bytes : (new Uint8Array(bytes) as Uint8Array<ArrayBuffer>);
  return info.array(aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / info.bytes);
}

/** The little-endian bytes of a typed array (a view, not a copy). */
export function bytesOfArray(data: TensorArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** float32 values of a float tensor; undefined for integer types. */
export function toFloat32(name: TensorDataType, data: TensorArray): Float32Array | undefined {
  switch (name) {
    case "float32":
      return data as Float32Array;
    case "float16":
      return fromFloat16(data as Uint16Array);
    case "bfloat16":
      return fromBfloat16(data as Uint16Array);
    case "float64":
      return Float32Array.from(data as Float64Array);
    default:
      return undefined;
  }
}

/** float32 values converted to a float type's storage (float16 rounds to nearest even). */
export function fromFloat32(name: TensorDataType, values: Float32Array): TensorArray | undefined {
  switch (name) {
    case "float32":
      return values;
    case "float16":
      return toFloat16(values);
    case "bfloat16": {
      // Round to nearest even on the dropped 16 bits, as torch does.
      const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
      return Uint16Array.from(bits, (x) => (x + 0x7fff + ((x >>> 16) & 1)) >>> 16);
    }
    case "float64":
      return Float64Array.from(values);
    default:
      return undefined;
  }
}
