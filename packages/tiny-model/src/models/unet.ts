import type { ModelProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import type { UnetDims } from "../dims.js";
import { GraphBuilder, TensorType, type Value } from "../onnx/graph-builder.js";
import {
  attention,
  conv2d,
  gelu,
  groupNorm,
  layerNorm,
  linear,
  type NetContext,
  silu,
} from "../onnx/layers.js";
import type { TinyModelOptions } from "../options.js";
import { createWeightInit } from "../weight-init.js";

// diffusers' UNet2DConditionModel, built layer by layer as diffusers builds it from the config this
// package writes next to it (same module tree, same parameter names and shapes), with the I/O of
// optimum's UNetOnnxConfig. Upsamplers resize to the size of the skip they meet (diffusers'
// `forward_upsample_size`), so any latent size works, odd ones included.
//
// Random weights alone would predict noise that no sampler can use: latents would end far out of range
// and every picture would be saturated blobs, a broken pipeline indistinguishable from a working one.
// So out_sample = √(1 − ᾱ_t)·latents + UNet(…): the first term is the exact ε-prediction for latents
// drawn from N(0, I) (the optimal denoiser of a unit-Gaussian prior, on the scaled_linear schedule of
// SD/SDXL), so a correct sampler ends at unit-scale latents; the seeded UNet adds structure that
// depends on the prompt and every other input.

export type UnetOptions = Pick<
  TinyModelOptions,
  "seed" | "timestepType" | "timestepShape" | "unetPrecision"
> &
  Partial<Pick<TinyModelOptions, "naming" | "controlResiduals">>;

const RESNET_EPS = 1e-5; // norm_eps
const TRANSFORMER_NORM_EPS = 1e-6; // Transformer2DModel's GroupNorm

/** diffusers' get_timestep_embedding with flip_sin_to_cos=True, downscale_freq_shift=0: [n] → [n, dim]. */
export function sinusoidalEmbedding(g: GraphBuilder, t: Value, dim: number): Value {
  const half = dim / 2;
  const freqs = Array.from({ length: half }, (_, k) => Math.exp((-Math.log(10000) * k) / half));
  const args = g.op("Mul", [g.op("Unsqueeze", [t, g.int64([1])]), g.float(freqs, [1, half])]);
  return g.op("Concat", [g.op("Cos", [args]), g.op("Sin", [args])], { axis: 1 });
}

/** TimestepEmbedding: linear_1 → SiLU → linear_2. */
function timestepEmbedding(net: NetContext, x: Value, name: string, inDim: number, outDim: number): Value {
  const hidden = silu(net.g, linear(net, x, `${name}.linear_1`, inDim, outDim, { input2d: true }));
  return linear(net, hidden, `${name}.linear_2`, outDim, outDim, { input2d: true });
}

export interface Block {
  readonly net: NetContext;
  readonly d: UnetDims;
  readonly emb: Value;
  readonly context: Value;
}

export function resnet(b: Block, x: Value, name: string, inC: number, outC: number): Value {
  const { net, d } = b;
  const { g } = net;
  let h = silu(g, groupNorm(net, x, `${name}.norm1`, inC, d.normGroups, RESNET_EPS));
  h = conv2d(net, h, `${name}.conv1`, inC, outC);
  const temb = linear(net, silu(g, b.emb), `${name}.time_emb_proj`, d.timeEmbedDim, outC, { input2d: true });
  h = g.op("Add", [h, g.op("Unsqueeze", [temb, g.int64([2, 3])])]);
  h = silu(g, groupNorm(net, h, `${name}.norm2`, outC, d.normGroups, RESNET_EPS));
  h = conv2d(net, h, `${name}.conv2`, outC, outC);
  const shortcut = inC === outC ? x : conv2d(net, x, `${name}.conv_shortcut`, inC, outC, { kernel: 1 });
  return g.scoped(name, () => g.op("Add", [shortcut, h]));
}

/** diffusers' Attention: to_q/to_k/to_v without bias, to_out.0 with bias. */
function diffusersAttention(
  net: NetContext,
  x: Value,
  context: Value,
  name: string,
  dim: number,
  contextDim: number,
  heads: number,
): Value {
  const q = linear(net, x, `${name}.to_q`, dim, dim, { bias: false });
  const k = linear(net, context, `${name}.to_k`, contextDim, dim, { bias: false });
  const v = linear(net, context, `${name}.to_v`, contextDim, dim, { bias: false });
  const attended = net.g.scoped(name, () => attention(net.g, q, k, v, heads, dim / heads));
  return linear(net, attended, `${name}.to_out.0`, dim, dim);
}

/** BasicTransformerBlock: self-attention, cross-attention, GEGLU feed-forward, each pre-LN and residual. */
function transformerBlock(b: Block, x: Value, name: string, dim: number, heads: number): Value {
  const { net, d } = b;
  const { g } = net;
  const n1 = layerNorm(net, x, `${name}.norm1`, dim);
  let h = g.op("Add", [x, diffusersAttention(net, n1, n1, `${name}.attn1`, dim, dim, heads)]);
  const n2 = layerNorm(net, h, `${name}.norm2`, dim);
  h = g.op("Add", [
    h,
    diffusersAttention(net, n2, b.context, `${name}.attn2`, dim, d.crossAttentionDim, heads),
  ]);
  const n3 = layerNorm(net, h, `${name}.norm3`, dim);
  const inner = dim * 4;
  const proj = linear(net, n3, `${name}.ff.net.0.proj`, dim, inner * 2);
  const gated = g.scoped(`${name}.ff.net.0`, () => {
    const hidden = g.op("Slice", [proj, g.int64([0]), g.int64([inner]), g.int64([-1])]);
    const gate = g.op("Slice", [proj, g.int64([inner]), g.int64([inner * 2]), g.int64([-1])]);
    return g.op("Mul", [hidden, gelu(g, gate)]);
  });
  return g.op("Add", [h, linear(net, gated, `${name}.ff.net.2`, inner, dim)]);
}

/** Transformer2DModel: NCHW ↔ tokens around one transformer block; proj_in/out Linear (SDXL) or 1×1 Conv (SD 1.x). */
export function transformer2d(b: Block, x: Value, name: string, dim: number, heads: number): Value {
  const { net, d } = b;
  const { g } = net;
  const project = (v: Value, proj: string, spatial: boolean): Value => {
    if (d.useLinearProjection === spatial) return v;
    return spatial
      ? conv2d(net, v, `${name}.${proj}`, dim, dim, { kernel: 1 })
      : linear(net, v, `${name}.${proj}`, dim, dim);
  };
  const normed = groupNorm(net, x, `${name}.norm`, dim, d.normGroups, TRANSFORMER_NORM_EPS);
  const projectedIn = project(normed, "proj_in", true);
  const tokens = g.scoped(name, () =>
    g.op("Transpose", [g.op("Reshape", [projectedIn, g.int64([0, 0, -1])])], { perm: [0, 2, 1] }),
  );
  let h = project(tokens, "proj_in", false);
  h = transformerBlock(b, h, `${name}.transformer_blocks.0`, dim, heads);
  h = project(h, "proj_out", false);
  const spatial = g.scoped(name, () =>
    g.op("Reshape", [g.op("Transpose", [h], { perm: [0, 2, 1] }), g.op("Shape", [x])]),
  );
  const projectedOut = project(spatial, "proj_out", true);
  return g.scoped(name, () => g.op("Add", [projectedOut, x]));
}

/** Upsample2D: nearest ×2, to exactly the size of `like` (the skip it will be concatenated with), then conv. */
function upsample(b: Block, x: Value, like: Value, name: string, channels: number): Value {
  const { g } = b.net;
  const up = g.scoped(name, () => {
    const sizes = g.op(
      "Concat",
      [g.op("Shape", [x], { start: 0, end: 2 }), g.op("Shape", [like], { start: 2, end: 4 })],
      {
        axis: 0,
      },
    );
    return g.op("Resize", [x, "", "", sizes], {
      mode: "nearest",
      coordinate_transformation_mode: "asymmetric",
      nearest_mode: "floor",
    });
  });
  return conv2d(b.net, up, `${name}.conv`, channels, channels);
}

/** How much the seeded UNet adds to the prior's prediction (its conv_out weight scale). */
const RESIDUAL_GAIN = 0.5;
const TRAIN_TIMESTEPS = 1000;

/** √(1 − ᾱ_t) for SD/SDXL's scaled_linear betas (0.00085 → 0.012), linearly interpolated at t: [n] → [n]. */
function noiseStdAt(g: GraphBuilder, t: Value): Value {
  const table: number[] = [];
  let alphaBar = 1;
  const [lo, hi] = [Math.sqrt(0.00085), Math.sqrt(0.012)];
  for (let i = 0; i < TRAIN_TIMESTEPS; i++) {
    alphaBar *= 1 - (lo + ((hi - lo) * i) / (TRAIN_TIMESTEPS - 1)) ** 2;
    table.push(Math.sqrt(1 - alphaBar));
  }
  const values = g.float(table, [TRAIN_TIMESTEPS]);
  const clipped = g.op("Clip", [t, g.float([0], []), g.float([TRAIN_TIMESTEPS - 1], [])]);
  const below = g.op("Floor", [clipped]);
  const above = g.op("Min", [g.op("Add", [below, g.float([1], [])]), g.float([TRAIN_TIMESTEPS - 1], [])]);
  const at = (index: Value) => g.op("Gather", [values, g.op("Cast", [index], { to: 7 })], { axis: 0 });
  const w = g.op("Sub", [clipped, below]);
  const [a, b] = [at(below), at(above)];
  return g.op("Add", [a, g.op("Mul", [g.op("Sub", [b, a]), w])]);
}

export interface Skip {
  readonly value: Value;
  readonly channels: number;
}

/** The float inputs a UNet (or a ControlNet) shares: `sample`, `timestep`, the text and added conditioning. */
export interface UnetInputs {
  readonly sample: Value;
  readonly timestep: Value;
  readonly context: Value;
  readonly textEmbeds: Value | undefined;
  readonly timeIds: Value | undefined;
}

/** Declares the UNet's inputs as optimum's UNetOnnxConfig names them; an fp16 export casts them to float32. */
export function unetInputs(g: GraphBuilder, d: UnetDims, options: UnetOptions): UnetInputs {
  const io = options.unetPrecision;
  const floatInput = (name: string, dims: Parameters<GraphBuilder["input"]>[2]) =>
    io === "float16"
      ? g.op("Cast", [g.input(name, "float16", dims)], { to: TensorType.float32 })
      : g.input(name, "float32", dims);
  const sample = floatInput("sample", ["batch_size", d.inChannels, "height", "width"]);
  const timestep = g.input(
    "timestep",
    options.timestepType,
    options.timestepShape === "scalar" ? [] : ["steps"],
  );
  const context = floatInput("encoder_hidden_states", ["batch_size", "sequence_length", d.crossAttentionDim]);
  const a = d.addition;
  return {
    sample,
    timestep,
    context,
    textEmbeds: a && floatInput("text_embeds", ["batch_size", a.textEmbedsDim]),
    timeIds: a && floatInput("time_ids", ["batch_size", a.timeIdsSize]),
  };
}

/**
 * The time embedding (plus SDXL's text_time added embedding) of each row: `emb`, and the timestep broadcast
 * over the batch (`batched`, [batch]).
 */
export function timeConditioning(
  net: NetContext,
  d: UnetDims,
  inputs: UnetInputs,
): { emb: Value; batched: Value } {
  const { g } = net;
  const [c0] = d.blockOutChannels as [number];
  // Time conditioning: the timestep (1 or one per sample) is broadcast over the batch, as diffusers does.
  const batched = g.scoped("time_proj", () => {
    const t = g.op("Reshape", [g.op("Cast", [inputs.timestep], { to: 1 }), g.int64([-1])]);
    return g.op("Expand", [t, g.op("Shape", [inputs.sample], { start: 0, end: 1 })]);
  });
  const tProj = g.scoped("time_proj", () => sinusoidalEmbedding(g, batched, c0));
  let emb = timestepEmbedding(net, tProj, "time_embedding", c0, d.timeEmbedDim);
  const added = d.addition;
  const { textEmbeds, timeIds } = inputs;
  if (added !== undefined && textEmbeds !== undefined && timeIds !== undefined) {
    const timeIdsDim = added.timeIdsSize * added.timeEmbedDim;
    const addIn = g.scoped("add_time_proj", () => {
      const flat = g.op("Reshape", [timeIds, g.int64([-1])]);
      const proj = g.op("Reshape", [
        sinusoidalEmbedding(g, flat, added.timeEmbedDim),
        g.int64([-1, timeIdsDim]),
      ]);
      return g.op("Concat", [textEmbeds, proj], { axis: 1 });
    });
    const aug = timestepEmbedding(
      net,
      addIn,
      "add_embedding",
      added.textEmbedsDim + timeIdsDim,
      d.timeEmbedDim,
    );
    emb = g.op("Add", [emb, aug]);
  }
  return { emb, batched };
}

/**
 * conv_in's output (already computed) through the down blocks: every skip connection in diffusers' order
 * (`down_block_res_samples`), and the features that go on to the mid block.
 */
export function downBlocks(b: Block, first: Value): { skips: Skip[]; x: Value } {
  const { net, d } = b;
  const [c0] = d.blockOutChannels as [number];
  const levels = d.blockOutChannels.length;
  let x = first;
  const skips: Skip[] = [{ value: x, channels: c0 }];
  for (let i = 0; i < levels; i++) {
    const inC = d.blockOutChannels[i - 1] ?? c0;
    const outC = d.blockOutChannels[i] as number;
    for (let j = 0; j < d.layersPerBlock; j++) {
      x = resnet(b, x, `down_blocks.${i}.resnets.${j}`, j === 0 ? inC : outC, outC);
      if (d.crossAttention[i])
        x = transformer2d(b, x, `down_blocks.${i}.attentions.${j}`, outC, d.attentionHeads[i] as number);
      skips.push({ value: x, channels: outC });
    }
    if (i < levels - 1) {
      x = conv2d(net, x, `down_blocks.${i}.downsamplers.0.conv`, outC, outC, { stride: 2 });
      skips.push({ value: x, channels: outC });
    }
  }
  return { skips, x };
}

/** UNetMidBlock2DCrossAttn: resnet, transformer, resnet. */
export function midBlock(b: Block, x: Value): Value {
  const { d } = b;
  const levels = d.blockOutChannels.length;
  const cMid = d.blockOutChannels[levels - 1] as number;
  const midHeads = d.attentionHeads[levels - 1] as number;
  let h = resnet(b, x, "mid_block.resnets.0", cMid, cMid);
  h = transformer2d(b, h, "mid_block.attentions.0", cMid, midHeads);
  return resnet(b, h, "mid_block.resnets.1", cMid, cMid);
}

/** The name of a split export's ControlNet residual for skip `i` (UNet input, ControlNet output). */
export const downResidualName = (i: number) => `down_block_${i}_additional_residual`;
export const MID_RESIDUAL_NAME = "mid_block_additional_residual";

export function buildUnet(d: UnetDims, options: UnetOptions): ModelProto {
  const naming = options.naming ?? "parameters";
  const g = new GraphBuilder("unet", naming === "exported" ? "torch" : "dotted");
  const net: NetContext = { g, w: createWeightInit(options.seed), naming };
  const [c0] = d.blockOutChannels as [number];
  const levels = d.blockOutChannels.length;
  const io = options.unetPrecision;
  const inputs = unetInputs(g, d, options);
  const { sample, context } = inputs;
  const { emb, batched } = timeConditioning(net, d, inputs);
  const b: Block = { net, d, emb, context };

  const down = downBlocks(b, conv2d(net, sample, "conv_in", d.inChannels, c0));
  let skips = down.skips;
  const cMid = d.blockOutChannels[levels - 1] as number;
  let x = midBlock(b, down.x);
  if (options.controlResiduals) {
    // diffusers' UNet2DConditionModel: each skip plus its residual, then the mid block's output plus the mid
    // residual; float inputs as the UNet's other inputs are (an fp16 export takes fp16 residuals).
    const residual = (name: string, channels: number, size: string) =>
      io === "float16"
        ? g.op(
            "Cast",
            [g.input(name, "float16", ["batch_size", channels, `${size}_height`, `${size}_width`])],
            {
              to: TensorType.float32,
            },
          )
        : g.input(name, "float32", ["batch_size", channels, `${size}_height`, `${size}_width`]);
    skips = skips.map((skip, i) => ({
      channels: skip.channels,
      value: g.op("Add", [skip.value, residual(downResidualName(i), skip.channels, `down_${i}`)]),
    }));
    x = g.op("Add", [x, residual(MID_RESIDUAL_NAME, cMid, "mid")]);
  }

  const reversed = [...d.blockOutChannels].reverse();
  const reversedAttention = [...d.crossAttention].reverse();
  const reversedHeads = [...d.attentionHeads].reverse();
  let channels = cMid;
  for (let i = 0; i < levels; i++) {
    const outC = reversed[i] as number;
    for (let j = 0; j <= d.layersPerBlock; j++) {
      const skip = skips.pop();
      if (skip === undefined) throw new Error("unet: skip connections exhausted");
      x = g.scoped(`up_blocks.${i}`, () => g.op("Concat", [x, skip.value], { axis: 1 }));
      x = resnet(b, x, `up_blocks.${i}.resnets.${j}`, channels + skip.channels, outC);
      channels = outC;
      if (reversedAttention[i])
        x = transformer2d(b, x, `up_blocks.${i}.attentions.${j}`, outC, reversedHeads[i] as number);
    }
    const next = skips[skips.length - 1];
    if (i < levels - 1 && next !== undefined)
      x = upsample(b, x, next.value, `up_blocks.${i}.upsamplers.0`, outC);
  }

  x = silu(g, groupNorm(net, x, "conv_norm_out", c0, d.normGroups, RESNET_EPS));
  x = conv2d(net, x, "conv_out", c0, d.outChannels, { gain: RESIDUAL_GAIN });
  const prior = g.scoped("gaussian_prior", () => {
    const latents = g.op("Slice", [sample, g.int64([0]), g.int64([d.outChannels]), g.int64([1])]);
    const scale = g.op("Reshape", [noiseStdAt(g, batched), g.int64([-1, 1, 1, 1])]);
    return g.op("Mul", [latents, scale]);
  });
  const out = g.op("Add", [prior, x]);
  g.output(io === "float16" ? g.op("Cast", [out], { to: TensorType.float16 }) : out, "out_sample", io, [
    "batch_size",
    d.outChannels,
    "height",
    "width",
  ]);
  return g.toModel("dmesh tiny UNet2DConditionModel (seeded random weights)");
}
