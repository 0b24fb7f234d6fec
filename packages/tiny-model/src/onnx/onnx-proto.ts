import { endianness } from "node:os";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

// Hand-written encoder for the subset of onnx.proto (onnx/onnx.proto, proto2) that a plain inference
// graph needs. Field numbers are those of onnx.proto; repeated scalars are written unpacked, as proto2
// declares them (every protobuf parser also accepts that form).

/** TensorProto.DataType values. */
export const TensorType = { float32: 1, int32: 6, int64: 7, bool: 9, float16: 10 } as const;
export type TensorTypeName = keyof typeof TensorType;

export type TensorData = Float32Array | Int32Array | BigInt64Array | Uint8Array;

export interface TensorProto {
  readonly name: string;
  readonly type: TensorTypeName;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** A dimension is fixed (number) or symbolic (string, e.g. "batch_size"). */
export type Dim = number | string;

export interface ValueInfoProto {
  readonly name: string;
  readonly type: TensorTypeName;
  /** `undefined` leaves the shape unknown; `[]` is a scalar. */
  readonly dims?: readonly Dim[];
}

export type AttributeValue =
  | { readonly f: number }
  | { readonly i: number }
  | { readonly s: string }
  | { readonly t: TensorProto }
  | { readonly floats: readonly number[] }
  | { readonly ints: readonly number[] };

export interface AttributeProto {
  readonly name: string;
  readonly value: AttributeValue;
}

export interface NodeProto {
  readonly opType: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: readonly AttributeProto[];
  readonly domain?: string;
}

export interface GraphProto {
  readonly name: string;
  readonly nodes: readonly NodeProto[];
  readonly initializers: readonly TensorProto[];
  readonly inputs: readonly ValueInfoProto[];
  readonly outputs: readonly ValueInfoProto[];
}

export interface ModelProto {
  readonly irVersion: number;
  readonly opsetVersion: number;
  readonly producerName: string;
  readonly producerVersion: string;
  readonly docString?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly graph: GraphProto;
}

// AttributeProto.AttributeType
const AttributeType = { f: 1, i: 2, s: 3, t: 4, floats: 6, ints: 7 } as const;

if (endianness() !== "LE") {
  // raw_data must be little-endian; typed arrays use the host order.
  throw new Error("tiny-model: ONNX serialization assumes a little-endian host");
}

function rawBytes(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function writeTensor(w: BinaryWriter, t: TensorProto): void {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) {
    throw new Error(`tensor ${t.name}: dims [${t.dims}] hold ${count} values but data has ${t.data.length}`);
  }
  for (const d of t.dims) w.tag(1, WireType.Varint).int64(d);
  w.tag(2, WireType.Varint).int32(TensorType[t.type]);
  w.tag(8, WireType.LengthDelimited).string(t.name);
  w.tag(9, WireType.LengthDelimited).bytes(rawBytes(t.data));
}

function writeValueInfo(w: BinaryWriter, v: ValueInfoProto): void {
  w.tag(1, WireType.LengthDelimited).string(v.name);
  w.tag(2, WireType.LengthDelimited).fork(); // TypeProto
  w.tag(1, WireType.LengthDelimited).fork(); // TypeProto.Tensor
  w.tag(1, WireType.Varint).int32(TensorType[v.type]);
  if (v.dims !== undefined) {
    w.tag(2, WireType.LengthDelimited).fork(); // TensorShapeProto
    for (const d of v.dims) {
      w.tag(1, WireType.LengthDelimited).fork(); // Dimension
      if (typeof d === "number") w.tag(1, WireType.Varint).int64(d);
      else w.tag(2, WireType.LengthDelimited).string(d);
      w.join();
    }
    w.join();
  }
  w.join();
  w.join();
}

function writeAttribute(w: BinaryWriter, a: AttributeProto): void {
  w.tag(1, WireType.LengthDelimited).string(a.name);
  const v = a.value;
  if ("f" in v) {
    w.tag(20, WireType.Varint).int32(AttributeType.f);
    w.tag(2, WireType.Bit32).float(v.f);
  } else if ("i" in v) {
    w.tag(20, WireType.Varint).int32(AttributeType.i);
    w.tag(3, WireType.Varint).int64(v.i);
  } else if ("s" in v) {
    w.tag(20, WireType.Varint).int32(AttributeType.s);
    w.tag(4, WireType.LengthDelimited).string(v.s);
  } else if ("t" in v) {
    w.tag(20, WireType.Varint).int32(AttributeType.t);
    w.tag(5, WireType.LengthDelimited).fork();
    writeTensor(w, v.t);
    w.join();
  } else if ("floats" in v) {
    w.tag(20, WireType.Varint).int32(AttributeType.floats);
    for (const f of v.floats) w.tag(7, WireType.Bit32).float(f);
  } else {
    w.tag(20, WireType.Varint).int32(AttributeType.ints);
    for (const i of v.ints) w.tag(8, WireType.Varint).int64(i);
  }
}

function writeNode(w: BinaryWriter, n: NodeProto): void {
  for (const i of n.inputs) w.tag(1, WireType.LengthDelimited).string(i);
  for (const o of n.outputs) w.tag(2, WireType.LengthDelimited).string(o);
  w.tag(3, WireType.LengthDelimited).string(n.name);
  w.tag(4, WireType.LengthDelimited).string(n.opType);
  for (const a of n.attributes) {
    w.tag(5, WireType.LengthDelimited).fork();
    writeAttribute(w, a);
    w.join();
  }
  if (n.domain !== undefined) w.tag(7, WireType.LengthDelimited).string(n.domain);
}

function writeGraph(w: BinaryWriter, g: GraphProto): void {
  for (const n of g.nodes) {
    w.tag(1, WireType.LengthDelimited).fork();
    writeNode(w, n);
    w.join();
  }
  w.tag(2, WireType.LengthDelimited).string(g.name);
  for (const t of g.initializers) {
    w.tag(5, WireType.LengthDelimited).fork();
    writeTensor(w, t);
    w.join();
  }
  for (const [field, list] of [
    [11, g.inputs],
    [12, g.outputs],
  ] as const) {
    for (const v of list) {
      w.tag(field, WireType.LengthDelimited).fork();
      writeValueInfo(w, v);
      w.join();
    }
  }
}

/** Serializes a model to the ONNX protobuf wire format (what `model.onnx` holds). */
export function encodeModel(m: ModelProto): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.Varint).int64(m.irVersion);
  w.tag(2, WireType.LengthDelimited).string(m.producerName);
  w.tag(3, WireType.LengthDelimited).string(m.producerVersion);
  if (m.docString !== undefined) w.tag(6, WireType.LengthDelimited).string(m.docString);
  w.tag(7, WireType.LengthDelimited).fork();
  writeGraph(w, m.graph);
  w.join();
  w.tag(8, WireType.LengthDelimited).fork(); // OperatorSetIdProto, default domain
  w.tag(1, WireType.LengthDelimited).string("");
  w.tag(2, WireType.Varint).int64(m.opsetVersion);
  w.join();
  for (const [key, value] of Object.entries(m.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    w.tag(14, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(key);
    w.tag(2, WireType.LengthDelimited).string(value);
    w.join();
  }
  return w.finish();
}
