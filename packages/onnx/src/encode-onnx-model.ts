import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { create, type Message, toBinary } from "@bufbuild/protobuf";
import {
  TensorProto_DataLocation as DataLocation,
  type ModelProto,
  ModelProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  TensorProtoSchema,
} from "@dmesh/contracts/onnx/onnx_pb.js";
import {
  bytesOfArray,
  dataTypeCode,
  elementCount,
  type TensorArray,
  type TensorDataType,
} from "./tensor-data-type.js";

/** Weights in a file beside the model, as `onnx.save_model(…, save_as_external_data=True)` writes them. */
export interface ExternalDataOptions {
  /** File name relative to the model's directory; optimum uses `model.onnx_data`. */
  readonly location: string;
  /** Initializers with at least this many bytes of raw_data go to the file (onnx's size_threshold). */
  readonly minBytes?: number;
}

export interface EncodeOnnxModelOptions {
  /** Without it every tensor stays inline in the model. */
  readonly externalData?: ExternalDataOptions;
}

export interface EncodedOnnxModel {
  /** What `model.onnx` holds. */
  readonly model: Uint8Array;
  /** What the external data file holds, when asked for one. */
  readonly externalData?: Uint8Array;
}

/** The default location of external data, as optimum writes it. */
export const EXTERNAL_DATA_FILE = "model.onnx_data";
const DEFAULT_MIN_EXTERNAL_BYTES = 1024;

/**
 * A tensor with `data` as raw_data (little-endian). Throws when the data does not fill the dims. The fields
 * are set in field-number order, the order every protobuf writer serializes them in.
 */
export function tensorProto(
  name: string,
  dataType: TensorDataType,
  dims: readonly number[],
  data: TensorArray,
): TensorProto {
  const count = elementCount(dims);
  if (count !== data.length) {
    throw new Error(`tensor ${name}: dims [${dims}] hold ${count} values but data has ${data.length}`);
  }
  return create(TensorProtoSchema, {
    dims: dims.map(BigInt),
    dataType: dataTypeCode(dataType),
    name,
    rawData: bytesOfArray(data),
  });
}

/**
 * Serializes a model. With `externalData`, every main-graph initializer holding at least `minBytes` of
 * raw_data moves to the external file, one after another without padding, with `location`, `offset` and
 * `length` entries, as onnx's `convert_model_to_external_data` + `save_model` write them. The model
 * passed in is not changed.
 */
export function encodeOnnxModel(model: ModelProto, options: EncodeOnnxModelOptions = {}): EncodedOnnxModel {
  const external = options.externalData;
  const graph = model.graph;
  if (!external || !graph) return { model: toBinary(ModelProtoSchema, model) };
  const minBytes = external.minBytes ?? DEFAULT_MIN_EXTERNAL_BYTES;
  const moved = graph.initializer.filter((t) => t.rawData.byteLength > 0 && t.rawData.byteLength >= minBytes);
  const data = new Uint8Array(moved.reduce((n, t) => n + t.rawData.byteLength, 0));
  let offset = 0;
  const replaced = new Map<TensorProto, TensorProto>();
  for (const tensor of moved) {
    data.set(tensor.rawData, offset);
    replaced.set(tensor, externalTensor(tensor, external.location, offset, tensor.rawData.byteLength));
    offset += tensor.rawData.byteLength;
  }
  const newGraph = shallowCopy(graph);
  newGraph.initializer = graph.initializer.map((t) => replaced.get(t) ?? t);
  const newModel = shallowCopy(model);
  newModel.graph = newGraph;
  return { model: toBinary(ModelProtoSchema, newModel), externalData: data };
}

/**
 * Writes `file` (and, with `externalData`, the data file beside it); each file is written under a
 * temporary name and renamed, so a reader never sees half a model. Returns the paths written.
 */
export async function writeOnnxModel(
  file: string,
  model: ModelProto,
  options: EncodeOnnxModelOptions = {},
): Promise<string[]> {
  const encoded = encodeOnnxModel(model, options);
  await mkdir(dirname(file), { recursive: true });
  const written: string[] = [];
  if (encoded.externalData && options.externalData) {
    const dataFile = join(dirname(file), options.externalData.location);
    await writeAtomically(dataFile, encoded.externalData);
    written.push(dataFile);
  }
  await writeAtomically(file, encoded.model);
  written.unshift(file);
  return written;
}

export async function writeAtomically(path: string, content: Uint8Array): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, path);
}

/** `tensor` without its bytes, pointing at `length` bytes at `offset` of `location`. */
export function externalTensor(
  tensor: TensorProto,
  location: string,
  offset: number,
  length: number,
): TensorProto {
  const out = shallowCopy(tensor);
  delete (out as Partial<TensorProto>).rawData;
  out.externalData = [
    create(StringStringEntryProtoSchema, { key: "location", value: location }),
    create(StringStringEntryProtoSchema, { key: "offset", value: String(offset) }),
    create(StringStringEntryProtoSchema, { key: "length", value: String(length) }),
  ];
  out.dataLocation = DataLocation.EXTERNAL;
  return out;
}

/** A copy of a message's own fields on the same prototype (so unset proto2 fields stay unset). */
export function shallowCopy<T extends Message>(message: T): T {
  return Object.assign(Object.create(Object.getPrototypeOf(message)) as T, message);
}
