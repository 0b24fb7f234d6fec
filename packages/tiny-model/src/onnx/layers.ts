import type { WeightInit } from "../weight-init.js";
import type { GraphBuilder, Value } from "./graph-builder.js";

// Building blocks shared by the tiny models. With `parameters` naming, parameters keep PyTorch's layouts
// and the names that diffusers/transformers give them (Linear weight [out, in], Conv weight
// [out, in, kh, kw], norm weight [C]) so that a weight loader can patch them by name and shape as it would
// a state dict; the graph transposes/reshapes them with nodes that ONNX Runtime folds away when it loads
// the model. With `exported` naming, the weights that torch.onnx's constant folding rewrites are stored as
// it leaves them: transposed or unsqueezed, under anonymous names (pytorch/pytorch#87452). The values are
// the same either way: each is drawn from the stream of its parameter name.

export interface NetContext {
  readonly g: GraphBuilder;
  readonly w: WeightInit;
  /** How weights are named and laid out; `parameters` by default. */
  readonly naming?: "parameters" | "exported";
}

/** A seeded random parameter with standard deviation `std`. */
export function randomParam(ctx: NetContext, name: string, dims: readonly number[], std: number): Value {
  const count = dims.reduce((a, b) => a * b, 1);
  return ctx.g.initializer(name, ctx.w.uniform(name, count, std), dims);
}

/** A constant-filled parameter (norm scales and biases start at 1 and 0, as in a fresh model). */
export function filledParam(ctx: NetContext, name: string, dims: readonly number[], value: number): Value {
  const count = dims.reduce((a, b) => a * b, 1);
  return ctx.g.initializer(name, new Float32Array(count).fill(value), dims);
}

export interface LinearOptions {
  readonly bias?: boolean;
  /** Scales the weight's standard deviation (1/√in by default). */
  readonly gain?: number;
  /** The input is [batch, features]: torch.onnx exports such a Linear with a bias as one Gemm. */
  readonly input2d?: boolean;
}

/** y = x·Wᵀ + b over the last axis; `name` is the module path (`….q_proj`). */
export function linear(
  ctx: NetContext,
  x: Value,
  name: string,
  inFeatures: number,
  outFeatures: number,
  { bias = true, gain = 1, input2d = false }: LinearOptions = {},
): Value {
  const { g } = ctx;
  if (ctx.naming === "exported")
    return exportedLinear(ctx, x, name, inFeatures, outFeatures, bias, gain, input2d);
  const weight = randomParam(ctx, `${name}.weight`, [outFeatures, inFeatures], gain / Math.sqrt(inFeatures));
  const b = bias ? randomParam(ctx, `${name}.bias`, [outFeatures], 0.02) : undefined;
  return g.scoped(name, () => {
    const y = g.op("MatMul", [x, g.op("Transpose", [weight], { perm: [1, 0] })]);
    return b === undefined ? y : g.op("Add", [y, b]);
  });
}

export interface ConvOptions {
  readonly kernel?: number;
  readonly stride?: number;
  /** [top, left, bottom, right]; "same" padding by default. */
  readonly pads?: readonly number[];
  readonly gain?: number;
  /** Explicit weight values instead of seeded random ones. */
  readonly weight?: Float32Array;
  /** Explicit bias values instead of seeded random ones. */
  readonly bias?: Float32Array;
}

/** A Linear as torch.onnx exports it: Gemm(x, W, b, transB=1) on 2-D input, else MatMul(x, Wᵀ) + b. */
function exportedLinear(
  ctx: NetContext,
  x: Value,
  name: string,
  inFeatures: number,
  outFeatures: number,
  bias: boolean,
  gain: number,
  input2d: boolean,
): Value {
  const { g, w } = ctx;
  const values = w.uniform(`${name}.weight`, outFeatures * inFeatures, gain / Math.sqrt(inFeatures));
  if (input2d && bias) {
    const weight = g.initializer(`${name}.weight`, values, [outFeatures, inFeatures]);
    const b = randomParam(ctx, `${name}.bias`, [outFeatures], 0.02);
    return g.scoped(name, () => g.op("Gemm", [x, weight, b], { alpha: { f: 1 }, beta: { f: 1 }, transB: 1 }));
  }
  const transposed = new Float32Array(values.length);
  for (let o = 0; o < outFeatures; o++)
    for (let i = 0; i < inFeatures; i++)
      transposed[i * outFeatures + o] = values[o * inFeatures + i] as number;
  const weight = g.anonymousInitializer("onnx::MatMul", transposed, [inFeatures, outFeatures]);
  const b = bias ? randomParam(ctx, `${name}.bias`, [outFeatures], 0.02) : undefined;
  return g.scoped(name, () => {
    const y = g.op("MatMul", [x, weight]);
    return b === undefined ? y : g.op("Add", [b, y]);
  });
}

/** 2-D convolution over NCHW. */
export function conv2d(
  ctx: NetContext,
  x: Value,
  name: string,
  inChannels: number,
  outChannels: number,
  options: ConvOptions = {},
): Value {
  const { g } = ctx;
  const k = options.kernel ?? 3;
  const dims = [outChannels, inChannels, k, k];
  const half = (k - 1) / 2;
  const std = (options.gain ?? 1) / Math.sqrt(inChannels * k * k);
  const weight =
    options.weight === undefined
      ? randomParam(ctx, `${name}.weight`, dims, std)
      : g.initializer(`${name}.weight`, options.weight, dims);
  const bias =
    options.bias === undefined
      ? randomParam(ctx, `${name}.bias`, [outChannels], 0.02)
      : g.initializer(`${name}.bias`, options.bias, [outChannels]);
  return g.scoped(name, () =>
    g.op("Conv", [x, weight, bias], {
      kernel_shape: [k, k],
      strides: [options.stride ?? 1, options.stride ?? 1],
      pads: options.pads ?? [half, half, half, half],
    }),
  );
}

/** LayerNorm over the last axis (`name.weight`, `name.bias`). */
export function layerNorm(ctx: NetContext, x: Value, name: string, dim: number, eps = 1e-5): Value {
  const { g } = ctx;
  const weight = filledParam(ctx, `${name}.weight`, [dim], 1);
  const bias = filledParam(ctx, `${name}.bias`, [dim], 0);
  return g.scoped(name, () => g.op("LayerNormalization", [x, weight, bias], { axis: -1, epsilon: eps }));
}

/** GroupNorm over NCHW, written as torch exports it for opsets before 18 (InstanceNorm over groups). */
export function groupNorm(
  ctx: NetContext,
  x: Value,
  name: string,
  channels: number,
  groups: number,
  eps: number,
): Value {
  const { g } = ctx;
  if (channels % groups !== 0)
    throw new Error(`${name}: ${channels} channels do not split into ${groups} groups`);
  // torch.onnx folds the Unsqueeze of scale and shift into anonymous [C, 1, 1] constants.
  const exported = ctx.naming === "exported";
  const weight = exported
    ? g.anonymousInitializer("onnx::Mul", new Float32Array(channels).fill(1), [channels, 1, 1])
    : filledParam(ctx, `${name}.weight`, [channels], 1);
  const bias = exported
    ? g.anonymousInitializer("onnx::Add", new Float32Array(channels), [channels, 1, 1])
    : filledParam(ctx, `${name}.bias`, [channels], 0);
  return g.scoped(name, () => {
    const grouped = g.op("Reshape", [x, g.int64([0, groups, -1])]);
    const normed = g.op(
      "InstanceNormalization",
      [grouped, g.float(Array(groups).fill(1)), g.float(Array(groups).fill(0))],
      {
        epsilon: eps,
      },
    );
    const back = g.op("Reshape", [normed, g.op("Shape", [x])]);
    if (exported) return g.op("Add", [g.op("Mul", [back, weight]), bias]);
    const axes = g.int64([1, 2]);
    const scaled = g.op("Mul", [back, g.op("Unsqueeze", [weight, axes])]);
    return g.op("Add", [scaled, g.op("Unsqueeze", [bias, axes])]);
  });
}

export function silu(g: GraphBuilder, x: Value): Value {
  return g.op("Mul", [x, g.op("Sigmoid", [x])]);
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)) (the Gelu op only arrives in opset 20). */
export function gelu(g: GraphBuilder, x: Value): Value {
  const erf = g.op("Erf", [g.op("Mul", [x, g.float([Math.SQRT1_2], [])])]);
  return g.op("Mul", [g.op("Mul", [x, g.float([0.5], [])]), g.op("Add", [erf, g.float([1], [])])]);
}

/** CLIP's quick_gelu, x·σ(1.702x). */
export function quickGelu(g: GraphBuilder, x: Value): Value {
  return g.op("Mul", [x, g.op("Sigmoid", [g.op("Mul", [x, g.float([1.702], [])])])]);
}

export function activation(g: GraphBuilder, x: Value, kind: "gelu" | "quick_gelu" | "silu"): Value {
  if (kind === "gelu") return gelu(g, x);
  if (kind === "quick_gelu") return quickGelu(g, x);
  return silu(g, x);
}

/**
 * Scaled dot-product attention over already projected q [b, s, h·d], k and v [b, t, h·d]; `mask` [s, t]
 * is added to the scores. Returns [b, s, h·d].
 */
export function attention(
  g: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  heads: number,
  headDim: number,
  mask?: Value,
): Value {
  const split = g.int64([0, 0, heads, headDim]);
  const toHeads = (x: Value, perm: number[]): Value =>
    g.op("Transpose", [g.op("Reshape", [x, split])], { perm });
  const qh = toHeads(g.op("Mul", [q, g.float([1 / Math.sqrt(headDim)], [])]), [0, 2, 1, 3]);
  const kt = toHeads(k, [0, 2, 3, 1]);
  const vh = toHeads(v, [0, 2, 1, 3]);
  let scores = g.op("MatMul", [qh, kt]);
  if (mask !== undefined) scores = g.op("Add", [scores, mask]);
  const probs = g.op("Softmax", [scores], { axis: -1 });
  const merged = g.op("Transpose", [g.op("MatMul", [probs, vh])], { perm: [0, 2, 1, 3] });
  return g.op("Reshape", [merged, g.int64([0, 0, heads * headDim])]);
}
