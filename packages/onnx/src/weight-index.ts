import type { NodeProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import type { OnnxModel } from "./onnx-model.js";
import type { TensorDataType } from "./tensor-data-type.js";

/** The weight of one Linear or Conv module of a model, found in its ONNX graph. */
export interface ModuleWeight {
  /** diffusers/transformers module path: `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`. */
  readonly module: string;
  /** The initializer holding the weight: `<module>.weight`, or an anonymous `onnx::MatMul_1234`. */
  readonly initializer: string;
  readonly kind: "linear" | "conv";
  /**
   * The initializer holds Wᵀ, [in, out]: what torch.onnx's constant folding leaves for a Linear exported as
   * MatMul, or a Gemm without transB. PyTorch's W is [out, in].
   */
  readonly transposed: boolean;
  /** The weight's shape in PyTorch's layout: [out, in] (Linear), [out, in, kh, kw] (Conv). */
  readonly shape: readonly number[];
  readonly dataType: TensorDataType;
  /** Found by its parameter name (`<module>.weight`) or by the node path torch.onnx gave its MatMul/Gemm/Conv. */
  readonly foundBy: "parameter" | "node";
}

/** An initializer that kept its PyTorch parameter name (`text_model.embeddings.token_embedding.weight`). */
export interface NamedParameter {
  readonly name: string;
  readonly dataType: TensorDataType;
  readonly dims: readonly number[];
}

export interface WeightIndex {
  /** Module path → its weight, for every MatMul/Gemm/Conv whose weight is an initializer. */
  readonly modules: ReadonlyMap<string, ModuleWeight>;
  /** Every initializer named like a parameter (dotted path), weights, biases, norms and embeddings alike. */
  readonly parameters: ReadonlyMap<string, NamedParameter>;
}

/** A dotted parameter path as PyTorch names state-dict entries. */
const PARAMETER_NAME = /^[A-Za-z_]\w*(?:\.\w+)+$/;
const FLOATS: readonly TensorDataType[] = ["float32", "float16", "bfloat16"];

/**
 * Maps the modules of a model to the initializers holding their weights. By parameter name where the export
 * kept it (`<module>.weight`, stored in PyTorch's layout, read through a Transpose, a Gemm with transB or a
 * Conv), else by the path of the node that consumes the weight: torch.onnx names a node by its module's
 * scopes joined with `/`, a ModuleList index glued to its list (`/down_blocks.1/attentions.0/…/to_q/MatMul`),
 * and constant folding leaves the Linear's weight transposed, [in, out], under an anonymous name.
 */
export function indexWeights(model: OnnxModel): WeightIndex {
  const inits = model.initializers;
  const graph = model.proto.graph;
  const producers = new Map<string, NodeProto>();
  for (const node of graph?.node ?? []) for (const out of node.output) producers.set(out, node);

  const modules = new Map<string, ModuleWeight>();
  const add = (node: NodeProto, initializer: string, kind: ModuleWeight["kind"], transposed: boolean) => {
    const info = inits.get(initializer);
    if (!info || !FLOATS.includes(info.dataType)) return;
    if (kind === "linear" && info.dims.length !== 2) return;
    if (kind === "conv" && info.dims.length < 3) return;
    const named = parameterModule(initializer);
    const module = named ?? nodeModule(node.name);
    if (module === undefined || modules.has(module)) return;
    const [a = 0, b = 0] = info.dims;
    modules.set(module, {
      module,
      initializer,
      kind,
      transposed,
      shape: transposed ? [b, a] : [...info.dims],
      dataType: info.dataType,
      foundBy: named === undefined ? "node" : "parameter",
    });
  };

  for (const node of graph?.node ?? []) {
    if (node.domain && node.domain !== "ai.onnx") continue;
    const weight = node.input[1] ?? "";
    if (node.opType === "Conv") {
      if (inits.has(weight)) add(node, weight, "conv", false);
    } else if (node.opType === "Gemm") {
      if (inits.has(weight)) add(node, weight, "linear", intAttribute(node, "transB") !== 1);
    } else if (node.opType === "MatMul") {
      if (inits.has(weight)) {
        add(node, weight, "linear", true);
        continue;
      }
      // MatMul(x, Transpose(W)): the weight kept PyTorch's layout (an export without constant folding).
      const transpose = producers.get(weight);
      const source = transpose?.input[0] ?? "";
      if (transpose?.opType === "Transpose" && inits.has(source) && isSwap(transpose))
        add(node, source, "linear", false);
    }
  }

  const parameters = new Map<string, NamedParameter>();
  for (const info of inits.values()) {
    if (PARAMETER_NAME.test(info.name))
      parameters.set(info.name, { name: info.name, dataType: info.dataType, dims: info.dims });
  }
  return { modules, parameters };
}

/** `down_blocks.0.resnets.0.conv1` for `down_blocks.0.resnets.0.conv1.weight`. */
function parameterModule(initializer: string): string | undefined {
  if (!PARAMETER_NAME.test(initializer) || !initializer.endsWith(".weight")) return undefined;
  return initializer.slice(0, -".weight".length);
}

/** `down_blocks.1.attentions.0.…to_q` for node `/down_blocks.1/attentions.0/…/to_q/MatMul`. */
function nodeModule(name: string): string | undefined {
  if (!name.startsWith("/")) return undefined;
  const scopes = name.slice(1).split("/").slice(0, -1);
  if (scopes.length === 0 || scopes.some((s) => !/^[A-Za-z_]\w*(?:\.\d+)*$/.test(s))) return undefined;
  return scopes.join(".");
}

function intAttribute(node: NodeProto, name: string): number | undefined {
  const a = node.attribute.find((x) => x.name === name);
  return a === undefined ? undefined : Number(a.i);
}

function isSwap(transpose: NodeProto): boolean {
  const perm = transpose.attribute.find((a) => a.name === "perm")?.ints.map(Number);
  return perm === undefined || (perm.length === 2 && perm[0] === 1 && perm[1] === 0);
}

/** The module's weight as float32 in PyTorch's layout (the base tensor is read once, see `readFloat32`). */
export async function readModuleWeight(model: OnnxModel, weight: ModuleWeight): Promise<Float32Array> {
  const stored = await model.readFloat32(weight.initializer);
  return weight.transposed ? transpose2d(stored, weight.shape[1] ?? 0, weight.shape[0] ?? 0) : stored.slice();
}

/** A replacement for the module's initializer from float32 values in PyTorch's layout. */
export function modulePatch(weight: ModuleWeight, values: Float32Array): TensorPatch {
  const count = weight.shape.reduce((a, b) => a * b, 1);
  if (values.length !== count)
    throw new RangeError(`${weight.module}: ${values.length} values for a weight of [${weight.shape}]`);
  if (!weight.transposed) return { data: values, dims: weight.shape };
  const [out = 0, inF = 0] = weight.shape;
  return { data: transpose2d(values, out, inF), dims: [inF, out] };
}

/** New values for an initializer, float32 in its stored layout (stored back in the initializer's dtype). */
export interface TensorPatch {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** [rows, cols] → [cols, rows]. */
export function transpose2d(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[row + c] as number;
  }
  return out;
}
