import type {
  AttributeProto,
  AttributeValue,
  Dim,
  GraphProto,
  ModelProto,
  NodeProto,
  TensorData,
  TensorProto,
  TensorTypeName,
  ValueInfoProto,
} from "./onnx-proto.js";

/** The name of a tensor value in the graph. */
export type Value = string;

/**
 * Attribute shorthand: an integer number is INT, any other number FLOAT, a string STRING, an array of
 * integers INTS (else FLOATS). Write `{ f: 1 }` for a float that happens to be integral.
 */
export type AttributeInput = number | string | readonly number[] | AttributeValue;

export const IR_VERSION = 8;
export const OPSET_VERSION = 17; // LayerNormalization needs 17
export const PRODUCER_NAME = "dmesh-tiny-model";

function toAttributeValue(name: string, v: AttributeInput): AttributeValue {
  if (typeof v === "number") return Number.isInteger(v) ? { i: v } : { f: v };
  if (typeof v === "string") return { s: v };
  if (Array.isArray(v)) {
    const list = v as readonly number[];
    return list.every(Number.isInteger) ? { ints: list } : { floats: list };
  }
  if (typeof v === "object" && v !== null) return v as AttributeValue;
  throw new Error(`attribute ${name}: unsupported value`);
}

function typeOf(data: TensorData): TensorTypeName {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  return "bool";
}

/**
 * Builds one ONNX graph. Nodes get torch-export-like names (`/scope/Op`, outputs `/scope/Op_output_0`)
 * so a graph reads like the model in Netron; parameters keep the names they are given.
 */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private readonly constants = new Map<string, Value>();
  private readonly scopes: string[] = [];

  constructor(readonly name: string) {}

  /** Declares a graph input. */
  input(name: string, type: TensorTypeName, dims: readonly Dim[]): Value {
    this.claim(name);
    this.inputs.push({ name, type, dims });
    return name;
  }

  /** Exposes `value` as graph output `name` (through an Identity node when the names differ). */
  output(value: Value, name: string, type: TensorTypeName, dims?: readonly Dim[]): void {
    if (value !== name) {
      this.claim(name);
      this.nodes.push({
        opType: "Identity",
        name: `/${name}/Identity`,
        inputs: [value],
        outputs: [name],
        attributes: [],
      });
    }
    this.outputs.push(dims === undefined ? { name, type } : { name, type, dims });
  }

  /** A named parameter tensor (its name is what a weight loader targets). */
  initializer(name: string, data: TensorData, dims: readonly number[]): Value {
    this.claim(name);
    this.initializers.push({ name, type: typeOf(data), dims, data });
    return name;
  }

  /** An int64 constant (shapes, axes, indices); identical constants are shared. */
  int64(values: readonly number[], dims: readonly number[] = [values.length]): Value {
    return this.constant(BigInt64Array.from(values.map(BigInt)), dims);
  }

  /** A float constant; identical constants are shared. */
  float(values: readonly number[], dims: readonly number[] = [values.length]): Value {
    return this.constant(Float32Array.from(values), dims);
  }

  private constant(data: TensorData, dims: readonly number[]): Value {
    const key = `${typeOf(data)}[${dims}]=${Array.from(data as ArrayLike<number | bigint>).join(",")}`;
    const known = this.constants.get(key);
    if (known !== undefined) return known;
    const name = this.unique(`/const/${typeOf(data)}_${this.constants.size}`);
    this.initializers.push({ name, type: typeOf(data), dims, data });
    this.constants.set(key, name);
    return name;
  }

  /** Runs `build` with `scope` appended to the node-name prefix. */
  scoped<T>(scope: string, build: () => T): T {
    this.scopes.push(scope);
    try {
      return build();
    } finally {
      this.scopes.pop();
    }
  }

  /** Adds a node with `outputCount` outputs and returns their names. Empty input names mean "omitted". */
  node(
    opType: string,
    inputs: readonly Value[],
    attributes: Readonly<Record<string, AttributeInput>> = {},
    outputCount = 1,
  ): Value[] {
    const name = this.unique(`/${[...this.scopes, opType].join("/")}`);
    const outputs = Array.from({ length: outputCount }, (_, k) => this.unique(`${name}_output_${k}`));
    const attrs: AttributeProto[] = Object.entries(attributes).map(([n, v]) => ({
      name: n,
      value: toAttributeValue(n, v),
    }));
    this.nodes.push({ opType, name, inputs, outputs, attributes: attrs });
    return outputs;
  }

  /** Adds a single-output node. */
  op(
    opType: string,
    inputs: readonly Value[],
    attributes: Readonly<Record<string, AttributeInput>> = {},
  ): Value {
    return this.node(opType, inputs, attributes, 1)[0] as Value;
  }

  build(): GraphProto {
    return {
      name: this.name,
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: this.inputs,
      outputs: this.outputs,
    };
  }

  toModel(docString: string, metadata: Readonly<Record<string, string>> = {}): ModelProto {
    return {
      irVersion: IR_VERSION,
      opsetVersion: OPSET_VERSION,
      producerName: PRODUCER_NAME,
      producerVersion: "1",
      docString,
      metadata,
      graph: this.build(),
    };
  }

  private claim(name: string): void {
    if (this.used.has(name)) throw new Error(`graph ${this.name}: duplicate value name ${name}`);
    this.used.add(name);
  }

  private unique(base: string): string {
    let name = base;
    for (let k = 1; this.used.has(name); k++) name = `${base}_${k}`;
    this.used.add(name);
    return name;
  }
}
