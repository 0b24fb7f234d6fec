import type { ModelProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import type { UnetDims } from "../dims.js";
import { GraphBuilder, type Value } from "../onnx/graph-builder.js";
import { conv2d, type NetContext, silu } from "../onnx/layers.js";
import type { TinyModelOptions } from "../options.js";
import { createWeightInit } from "../weight-init.js";
import {
  type Block,
  downBlocks,
  downResidualName,
  MID_RESIDUAL_NAME,
  midBlock,
  timeConditioning,
  unetInputs,
} from "./unet.js";

// diffusers' ControlNetModel, built as diffusers builds it from the config written beside it: the UNet's
// time embedding, conv_in and down/mid blocks (same module names and shapes), plus the conditioning
// embedding that brings the pixel-space control map down to latent size, and one 1×1 conv per skip
// connection (`controlnet_down_blocks.<i>`) and for the mid block (`controlnet_mid_block`). Exported as
// split ONNX pipelines have it: the UNet's inputs plus `controlnet_cond` ([b, 3, H, W] in 0..1) and
// `conditioning_scale`, returning the residuals already multiplied by the scale.
//
// Real ControlNets start those convs at zero and learn them; seeded random weights instead make a control
// map visibly change the tiny model's output, so tests can tell a ControlNet that acts from one that does not.

export type ControlNetOptions = Pick<TinyModelOptions, "seed" | "timestepType" | "timestepShape"> &
  Partial<Pick<TinyModelOptions, "naming">>;

/** ControlNetConditioningEmbedding's channels (diffusers' `conditioning_embedding_out_channels`): 3 halvings. */
export const CONDITIONING_EMBEDDING_CHANNELS = [8, 8, 16, 16] as const;

/** ControlNetConditioningEmbedding: conv_in, then per level a conv and a stride-2 conv, then conv_out; SiLU between. */
function conditioningEmbedding(net: NetContext, cond: Value, outChannels: number): Value {
  const { g } = net;
  const name = "controlnet_cond_embedding";
  const channels = CONDITIONING_EMBEDDING_CHANNELS;
  let h = silu(g, conv2d(net, cond, `${name}.conv_in`, 3, channels[0]));
  for (let i = 0; i < channels.length - 1; i++) {
    const c = channels[i] as number;
    h = silu(g, conv2d(net, h, `${name}.blocks.${2 * i}`, c, c));
    h = silu(g, conv2d(net, h, `${name}.blocks.${2 * i + 1}`, c, channels[i + 1] as number, { stride: 2 }));
  }
  return conv2d(net, h, `${name}.conv_out`, channels[channels.length - 1] as number, outChannels);
}

export function buildControlNet(unet: UnetDims, options: ControlNetOptions): ModelProto {
  const naming = options.naming ?? "parameters";
  const g = new GraphBuilder("controlnet", naming === "exported" ? "torch" : "dotted");
  const net: NetContext = { g, w: createWeightInit(options.seed), naming };
  // A ControlNet sees the 4 latent channels, also beside an inpainting UNet.
  const d: UnetDims = { ...unet, inChannels: 4 };
  const [c0] = d.blockOutChannels as [number];
  const inputs = unetInputs(g, d, { ...options, unetPrecision: "float32" });
  const cond = g.input("controlnet_cond", "float32", ["batch_size", 3, "image_height", "image_width"]);
  const scale = g.input("conditioning_scale", "float32", []);
  const { emb } = timeConditioning(net, d, inputs);
  const b: Block = { net, d, emb, context: inputs.context };

  const x = g.op("Add", [
    conv2d(net, inputs.sample, "conv_in", d.inChannels, c0),
    conditioningEmbedding(net, cond, c0),
  ]);
  const down = downBlocks(b, x);
  const mid = midBlock(b, down.x);
  const residual = (value: Value, name: string, module: string, channels: number, size: string) => {
    const projected = conv2d(net, value, module, channels, channels, { kernel: 1 });
    g.output(g.op("Mul", [projected, scale]), name, "float32", [
      "batch_size",
      channels,
      `${size}_height`,
      `${size}_width`,
    ]);
  };
  down.skips.forEach((skip, i) => {
    residual(skip.value, downResidualName(i), `controlnet_down_blocks.${i}`, skip.channels, `down_${i}`);
  });
  const cMid = d.blockOutChannels[d.blockOutChannels.length - 1] as number;
  residual(mid, MID_RESIDUAL_NAME, "controlnet_mid_block", cMid, "mid");
  return g.toModel("dmesh tiny ControlNetModel (seeded random weights)");
}
