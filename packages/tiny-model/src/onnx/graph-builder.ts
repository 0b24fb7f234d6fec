import { create } from "@bufbuild/protobuf";
import {
  type AttributeProto,
  AttributeProtoSchema,
  AttributeProto_AttributeType as AttributeType,
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from "@dmesh/contracts/onnx/onnx_pb.js";
import { dataTypeCode, type TensorArray, type TensorDataType, tensorProto } from "@dmesh/onnx";

/** The name of a tensor value in the graph. */
export type Value = string;

/** Element types the tiny models use. */
export type TensorTypeName = Extract<TensorDataType, "float32" | "float16" | "int32" | "int64" | "bool">;

/** A dimension is fixed (number) or symbolic (string, e.g. "batch_size"). */
export type Dim = number | string;

/** ONNX data type codes, for Cast's `to`. */
export const TensorType = { float32: 1, int32: 6, int64: 7, bool: 9, float16: 10 } as const;

/** An attribute value given explicitly. */
export type AttributeValue =
  | { readonly f: number }
  | { readonly i: number }
  | { readonly s: string }
  | { readonly floats: readonly number[] }
  | { readonly ints: readonly number[] };

/**
 * Attribute shorthand: an integer number is INT, any other number FLOAT, a string STRING, an array of
 * integers INTS (else FLOATS). Write `{ f: 1 }` for a float that happens to be integral.
 */
export type AttributeInput = number | string | readonly number[] | AttributeValue;

export const IR_VERSION = 8;
export const OPSET_VERSION = 17; // LayerNormalization needs 17
export const PRODUCER_NAME = "dmesh-tiny-model";

/** How node names carry module paths. */
export type NodeNaming =
  /** `/down_blocks.0.resnets.0.conv1/Conv`: the module path as one scope. */
  | "dotted"
  /**
   * `/down_blocks.0/resnets.0/conv1/Conv`, as torch.onnx names nodes: one scope per module, a ModuleList
   * index glued to its list's name.
   */
  | "torch";

function toAttribute(name: string, v: AttributeInput): AttributeProto {
  if (typeof v === "number") return toAttribute(name, Number.isInteger(v) ? { i: v } : { f: v });
  if (typeof v === "string") return toAttribute(name, { s: v });
  if (Array.isArray(v)) {
    const list = v as readonly number[];
    return toAttribute(name, list.every(Number.isInteger) ? { ints: list } : { floats: list });
  }
  const value = v as AttributeValue;
  if ("f" in value) return create(AttributeProtoSchema, { name, type: AttributeType.FLOAT, f: value.f });
  if ("i" in value)
    return create(AttributeProtoSchema, { name, type: AttributeType.INT, i: BigInt(value.i) });
  if ("s" in value)
    return create(AttributeProtoSchema, {
      name,
      type: AttributeType.STRING,
      s: new TextEncoder().encode(value.s),
    });
  if ("floats" in value)
    return create(AttributeProtoSchema, { name, type: AttributeType.FLOATS, floats: [...value.floats] });
  if ("ints" in value)
    return create(AttributeProtoSchema, { name, type: AttributeType.INTS, ints: value.ints.map(BigInt) });
  throw new Error(`attribute ${name}: unsupported value`);
}

function typeOf(data: TensorArray): TensorTypeName {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Uint16Array) return "float16";
  return "bool";
}

function valueInfo(name: string, type: TensorTypeName, dims: readonly Dim[] | undefined): ValueInfoProto {
  const shape =
    dims === undefined
      ? undefined
      : create(TensorShapeProtoSchema, {
          dim: dims.map((d) =>
            create(TensorShapeProto_DimensionSchema, {
              value:
                typeof d === "number"
                  ? { case: "dimValue", value: BigInt(d) }
                  : { case: "dimParam", value: d },
            }),
          ),
        });
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: "tensorType",
        value: create(TypeProto_TensorSchema, {
          elemType: dataTypeCode(type),
          ...(shape === undefined ? {} : { shape }),
        }),
      },
    }),
  });
}

/** Torch's scope for a module path: `down_blocks.0.resnets.0` → `down_blocks.0/resnets.0`. */
export function torchScope(modulePath: string): string {
  return modulePath.replace(/\.(?!\d+(?:\.|$))/g, "/");
}

interface Initializer {
  readonly name: string;
  readonly type: TensorTypeName;
  readonly dims: readonly number[];
  readonly data: TensorArray;
}

/**
 * Builds one ONNX graph as the generated `onnx.proto` types. Nodes get torch-export-like names
 * (`/scope/Op`, outputs `/scope/Op_output_0`) so a graph reads like the model in Netron; parameters keep
 * the names they are given.
 */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: Initializer[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private readonly constants = new Map<string, Value>();
  private readonly scopes: string[] = [];

  constructor(
    readonly name: string,
    private readonly naming: NodeNaming = "dotted",
  ) {}

  /** Declares a graph input. */
  input(name: string, type: TensorTypeName, dims: readonly Dim[]): Value {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Exposes `value` as graph output `name` (through an Identity node when the names differ). */
  output(value: Value, name: string, type: TensorTypeName, dims?: readonly Dim[]): void {
    if (value !== name) {
      this.claim(name);
      this.nodes.push(
        create(NodeProtoSchema, {
          input: [value],
          output: [name],
          name: `/${name}/Identity`,
          opType: "Identity",
        }),
      );
    }
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** A named parameter tensor (its name is what a weight loader targets). */
  initializer(name: string, data: TensorArray, dims: readonly number[]): Value {
    this.claim(name);
    this.initializers.push({ name, type: typeOf(data), dims, data });
    return name;
  }

  /**
   * A parameter that the export renamed, as torch.onnx's constant folding does (`onnx::MatMul_1234`):
   * `<prefix>_<n>`, n counting the values made so far.
   */
  anonymousInitializer(prefix: string, data: TensorArray, dims: readonly number[]): Value {
    const name = this.unique(`${prefix}_${this.used.size}`);
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

  private constant(data: TensorArray, dims: readonly number[]): Value {
    const key = `${typeOf(data)}[${dims}]=${Array.from(data as ArrayLike<number | bigint>).join(",")}`;
    const known = this.constants.get(key);
    if (known !== undefined) return known;
    const name = this.unique(`/const/${typeOf(data)}_${this.constants.size}`);
    this.initializers.push({ name, type: typeOf(data), dims, data });
    this.constants.set(key, name);
    return name;
  }

  /** Runs `build` with `scope` (a module path) appended to the node-name prefix. */
  scoped<T>(scope: string, build: () => T): T {
    this.scopes.push(this.naming === "torch" ? torchScope(scope) : scope);
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
    this.nodes.push(
      create(NodeProtoSchema, {
        input: [...inputs],
        output: outputs,
        name,
        opType,
        attribute: Object.entries(attributes).map(([n, v]) => toAttribute(n, v)),
      }),
    );
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

  /** The model; throws when an initializer's data does not fill its dims. */
  toModel(docString: string, metadata: Readonly<Record<string, string>> = {}): ModelProto {
    const graph = create(GraphProtoSchema, {
      node: this.nodes,
      name: this.name,
      initializer: this.initializers.map((t) => tensorProto(t.name, t.type, t.dims, t.data)),
      input: this.inputs,
      output: this.outputs,
    });
    return create(ModelProtoSchema, {
      irVersion: BigInt(IR_VERSION),
      producerName: PRODUCER_NAME,
      producerVersion: "1",
      docString,
      graph,
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(OPSET_VERSION) })],
      metadataProps: Object.entries(metadata)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
    });
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
