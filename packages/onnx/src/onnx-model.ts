import { open, readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { clearField, fromBinary } from "@bufbuild/protobuf";
import {
  TensorProto_DataLocation as DataLocation,
  type GraphProto,
  type ModelProto,
  ModelProtoSchema,
  type TensorProto,
  TensorProtoSchema,
} from "@dmesh/contracts/onnx/onnx_pb.js";
import { shallowCopy } from "./encode-onnx-model.js";
import { type ExternalRange, resolveExternalData } from "./external-data.js";
import { ModelContractError } from "./model-contract-error.js";
import {
  arrayFromBytes,
  bytesOfArray,
  dataTypeName,
  elementBytes,
  elementCount,
  type TensorArray,
  type TensorDataType,
  toFloat32,
} from "./tensor-data-type.js";

/** Inline tensors smaller than this stay in memory; larger ones are read from the file when asked for. */
const KEEP_INLINE_BYTES = 4096;

/** Where an initializer's bytes are. */
export type TensorLocation =
  | { readonly kind: "memory"; readonly bytes: Uint8Array }
  /** A byte range of `model.onnx` itself (raw_data) or of an external data file. */
  | ({ readonly kind: "file"; readonly external: boolean } & ExternalRange);

/** One initializer of the main graph: its dtype, its dims and where its bytes are. */
export interface InitializerInfo {
  readonly name: string;
  readonly dataType: TensorDataType;
  readonly dims: readonly number[];
  readonly location: TensorLocation;
}

export interface ReadOnnxModelOptions {
  /** The model's name in errors (a model id); the file's path by default. */
  readonly model?: string;
}

/**
 * An ONNX model read from disk: its graph (the generated `ModelProto`, with the initializers' data taken
 * out) and, per initializer, where its bytes are. Tensor bytes are read lazily, bounds-checked;
 * float32 copies read for patching are kept, and counted, so that several patches of the same weights read
 * the disk once.
 */
export class OnnxModel {
  private readonly float32 = new Map<string, Float32Array>();
  private readonly reading = new Map<string, Promise<Float32Array>>();
  private keptBytes = 0;

  private constructor(
    /** The model's name in errors. */
    readonly id: string,
    /** Absolute path of the model file. */
    readonly file: string,
    /**
     * The model with every main-graph initializer's data removed (raw_data, typed data and external data
     * entries cleared); `initializers` says where the data is.
     */
    readonly proto: ModelProto,
    readonly initializers: ReadonlyMap<string, InitializerInfo>,
  ) {}

  /** The directory external data locations are relative to. */
  get dir(): string {
    return dirname(this.file);
  }

  static async read(file: string, options: ReadOnnxModelOptions = {}): Promise<OnnxModel> {
    const path = resolve(file);
    const id = options.model ?? path;
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(path));
    } catch (error) {
      throw new ModelContractError(id, `${path} cannot be read: ${(error as Error).message}`);
    }
    let proto: ModelProto;
    try {
      proto = fromBinary(ModelProtoSchema, bytes);
    } catch (error) {
      throw new ModelContractError(id, `${path} is not an ONNX model: ${(error as Error).message}`);
    }
    if (!proto.graph) throw new ModelContractError(id, `${path} holds no graph`);
    const fail = (tensor: string, problem: string): never => {
      throw new ModelContractError(id, `${path}: tensor "${tensor}": ${problem}`);
    };
    const external: { tensor: TensorProto; expectedBytes: number }[] = [];
    const infos = new Map<string, InitializerInfo>();
    const pending: { tensor: TensorProto; dataType: TensorDataType; dims: number[] }[] = [];
    const seen = new Set<string>();
    for (const tensor of proto.graph.initializer) {
      const dataType = dataTypeName(tensor.dataType);
      if (dataType === undefined)
        fail(tensor.name, `has data type ${tensor.dataType}, which is not supported`);
      const dims = tensor.dims.map(Number);
      if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) fail(tensor.name, `has dims [${dims}]`);
      if (seen.has(tensor.name)) fail(tensor.name, "is an initializer twice");
      seen.add(tensor.name);
      const type = dataType as TensorDataType;
      if (tensor.dataLocation === DataLocation.EXTERNAL) {
        external.push({ tensor, expectedBytes: elementCount(dims) * elementBytes(type) });
        pending.push({ tensor, dataType: type, dims });
        continue;
      }
      const data = inlineBytes(tensor, type, elementCount(dims), (p) => fail(tensor.name, p));
      const offset = data.buffer === bytes.buffer ? data.byteOffset - bytes.byteOffset : -1;
      const location: TensorLocation =
        offset >= 0 && data.byteLength >= KEEP_INLINE_BYTES
          ? { kind: "file", external: false, file: path, offset, length: data.byteLength }
          : { kind: "memory", bytes: data.buffer === bytes.buffer ? data.slice() : data };
      infos.set(tensor.name, { name: tensor.name, dataType: type, dims, location });
      clearData(tensor);
    }
    const ranges = resolveExternalData(id, path, dirname(path), external);
    for (const { tensor, dataType, dims } of pending) {
      const range = ranges.get(tensor.name) as ExternalRange;
      infos.set(tensor.name, {
        name: tensor.name,
        dataType,
        dims,
        location: { kind: "file", external: true, ...range },
      });
      clearData(tensor);
    }
    detachGraph(proto.graph, bytes.buffer);
    // Keep the declaration order of the graph.
    const ordered = new Map(
      proto.graph.initializer.map((t) => [t.name, infos.get(t.name) as InitializerInfo]),
    );
    return new OnnxModel(id, path, proto, ordered);
  }

  /** Bytes of the float32 copies kept by `readFloat32`. */
  get cachedBytes(): number {
    return this.keptBytes;
  }

  initializer(name: string): InitializerInfo {
    const info = this.initializers.get(name);
    if (!info) throw new ModelContractError(this.id, `${this.file} has no initializer "${name}"`);
    return info;
  }

  /** The initializer's values in its stored dtype (float16 as bit patterns). */
  async readTensor(name: string): Promise<TensorArray> {
    const info = this.initializer(name);
    return arrayFromBytes(info.dataType, await this.readBytes(info));
  }

  /**
   * The initializer's values as float32 in its stored layout, read once and kept (see `cachedBytes`,
   * `forget`): adapters patch the same base weights for many adapter sets.
   */
  readFloat32(name: string): Promise<Float32Array> {
    const kept = this.float32.get(name);
    if (kept) return Promise.resolve(kept);
    let reading = this.reading.get(name);
    if (!reading) {
      reading = (async () => {
        const info = this.initializer(name);
        const values = toFloat32(info.dataType, await this.readTensor(name));
        if (!values)
          throw new ModelContractError(
            this.id,
            `${this.file}: tensor "${name}" is ${info.dataType}, not a float`,
          );
        // A float32 view of the file's bytes would pin them; keep an array of our own.
        const own = values.byteLength === values.buffer.byteLength ? values : values.slice();
        this.float32.set(name, own);
        this.keptBytes += own.byteLength;
        return own;
      })().finally(() => this.reading.delete(name));
      this.reading.set(name, reading);
    }
    return reading;
  }

  /**
   * The whole model as one message, every initializer's bytes inline (read from disk): for writing it
   * elsewhere, inline or with other external data. Needs the model's size in memory.
   */
  async toProto(): Promise<ModelProto> {
    const model = shallowCopy(this.proto);
    const graph = shallowCopy(model.graph as NonNullable<ModelProto["graph"]>);
    graph.initializer = await Promise.all(
      graph.initializer.map(async (tensor) => {
        const out = shallowCopy(tensor);
        out.rawData = await this.readBytes(this.initializer(tensor.name));
        return out;
      }),
    );
    model.graph = graph;
    return model;
  }

  /** Drops kept float32 copies (all of them without names). */
  forget(names?: Iterable<string>): void {
    for (const name of names ?? [...this.float32.keys()]) {
      const kept = this.float32.get(name);
      if (!kept) continue;
      this.keptBytes -= kept.byteLength;
      this.float32.delete(name);
    }
  }

  private async readBytes(info: InitializerInfo): Promise<Uint8Array> {
    const location = info.location;
    if (location.kind === "memory") return location.bytes;
    const handle = await open(location.file, "r").catch((error: Error) => {
      throw new ModelContractError(this.id, `${this.file}: tensor "${info.name}": ${error.message}`);
    });
    try {
      const out = Buffer.allocUnsafeSlow(location.length);
      let done = 0;
      while (done < location.length) {
        const { bytesRead } = await handle.read(out, done, location.length - done, location.offset + done);
        if (bytesRead === 0) {
          throw new ModelContractError(
            this.id,
            `${this.file}: tensor "${info.name}": ${location.file} ends at ${location.offset + done}, before its ${location.length} bytes`,
          );
        }
        done += bytesRead;
      }
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } finally {
      await handle.close();
    }
  }
}

/** Reads `file` (graph and initializer locations; tensor bytes stay on disk until asked for). */
export function readOnnxModel(file: string, options?: ReadOnnxModelOptions): Promise<OnnxModel> {
  return OnnxModel.read(file, options);
}

/** The bytes of a tensor stored in the model file: raw_data, or the typed field its dtype uses. */
function inlineBytes(
  tensor: TensorProto,
  dataType: TensorDataType,
  count: number,
  fail: (problem: string) => never,
): Uint8Array {
  const expected = count * elementBytes(dataType);
  if (tensor.rawData.length > 0 || count === 0) {
    if (tensor.rawData.length !== expected)
      fail(`raw_data holds ${tensor.rawData.length} bytes; its dims and dtype need ${expected}`);
    return tensor.rawData;
  }
  const typed = typedField(tensor, dataType);
  if (typed === undefined || typed.length !== count)
    fail(`holds ${typed?.length ?? 0} values in its typed data field; its dims need ${count}`);
  return bytesOfArray(typed as TensorArray);
}

/** float_data, int32_data (also int8/16, uint8/16, bool, float16 and bfloat16 bits), int64_data, … */
function typedField(tensor: TensorProto, dataType: TensorDataType): TensorArray | undefined {
  switch (dataType) {
    case "float32":
      return tensor.floatData.length ? Float32Array.from(tensor.floatData) : undefined;
    case "float64":
      return tensor.doubleData.length ? Float64Array.from(tensor.doubleData) : undefined;
    case "int64":
      return tensor.int64Data.length ? BigInt64Array.from(tensor.int64Data) : undefined;
    case "uint32":
      return tensor.uint64Data.length ? Uint32Array.from(tensor.uint64Data, Number) : undefined;
    case "uint64":
      return tensor.uint64Data.length ? BigUint64Array.from(tensor.uint64Data) : undefined;
    case "int32":
      return tensor.int32Data.length ? Int32Array.from(tensor.int32Data) : undefined;
    case "int8":
      return tensor.int32Data.length ? Int8Array.from(tensor.int32Data) : undefined;
    case "int16":
      return tensor.int32Data.length ? Int16Array.from(tensor.int32Data) : undefined;
    case "uint8":
    case "bool":
      return tensor.int32Data.length ? Uint8Array.from(tensor.int32Data) : undefined;
    default:
      // uint16, float16, bfloat16: the bit patterns in int32_data.
      return tensor.int32Data.length ? Uint16Array.from(tensor.int32Data) : undefined;
  }
}

/**
 * Copies the bytes that other tensors of the graph (Constant nodes, subgraphs, sparse initializers) still
 * view in the file's buffer, so that the buffer is not kept alive for their sake.
 */
function detachGraph(graph: GraphProto, buffer: ArrayBufferLike): void {
  const tensor = (t: TensorProto) => {
    if (t.rawData.buffer === buffer) t.rawData = t.rawData.slice();
  };
  for (const t of graph.initializer) tensor(t);
  for (const sparse of graph.sparseInitializer) {
    if (sparse.values) tensor(sparse.values);
    if (sparse.indices) tensor(sparse.indices);
  }
  for (const node of graph.node) {
    for (const a of node.attribute) {
      if (a.t) tensor(a.t);
      for (const t of a.tensors) tensor(t);
      if (a.g) detachGraph(a.g, buffer);
      for (const g of a.graphs) detachGraph(g, buffer);
    }
  }
}

function clearData(tensor: TensorProto): void {
  clearField(tensor, TensorProtoSchema.field.rawData);
  clearField(tensor, TensorProtoSchema.field.dataLocation);
  tensor.floatData = [];
  tensor.int32Data = [];
  tensor.int64Data = [];
  tensor.doubleData = [];
  tensor.uint64Data = [];
  tensor.externalData = [];
}
