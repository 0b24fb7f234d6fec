import { type TextEncoderDims, type TinyModelDims, tinyModelDims, type UnetDims } from "../dims.js";
import { resolveTinyModelOptions, type TinyModelKind } from "../options.js";

// The modules of the tiny model that adapters can target (weights of Linear and Conv2d layers, in
// PyTorch layout), with the names two conventions give them: the diffusers/transformers path the
// tiny model's initializers carry, and, for the UNet, the original SGM UNet's path, which kohya-ss
// SDXL LoRAs use. SGM paths are numbered here by walking the blocks in the order the SGM UNet
// constructs them (input_blocks appended level by level, a downsampler after each level but the last;
// output_blocks likewise, the upsampler inside the last block of a level), not by a formula, so a
// reader that maps names by diffusers' formula is checked against an independent derivation.

export type TinyComponent = "unet" | "text_encoder" | "text_encoder_2";

/** Which kind of layer a module is: plain LoRA adapts transformer and text layers; LoCon adds the rest. */
export type ModuleGroup = "transformer" | "resnet" | "sampler" | "text" | "other";

export interface TinyModule {
  readonly component: TinyComponent;
  readonly path: string;
  /** The SGM path (UNet only). */
  readonly sgmPath?: string;
  readonly shape: readonly number[];
  readonly group: ModuleGroup;
}

// No adapter targets a vocabulary-sized weight (token embeddings), so the vocabulary, which the tiny
// model learns from its corpus, does not change these modules.
const VOCABULARY_FREE = { vocabSize: 0, exclamationId: 0 } as const;

/** The tiny model's dims for `kind`, with the UNet's `layers_per_block` set (the tiny default is 1). */
export function tinyAdapterDims(kind: TinyModelKind, layersPerBlock?: number): TinyModelDims {
  const dims = tinyModelDims(resolveTinyModelOptions({ kind }), VOCABULARY_FREE);
  return layersPerBlock === undefined ? dims : { ...dims, unet: { ...dims.unet, layersPerBlock } };
}

function unetModules(d: UnetDims): TinyModule[] {
  const out: TinyModule[] = [];
  const add = (path: string, sgmPath: string, shape: readonly number[], group: ModuleGroup) =>
    out.push({ component: "unet", path, sgmPath, shape, group });
  const c0 = d.blockOutChannels[0] as number;
  const levels = d.blockOutChannels.length;
  const T = d.timeEmbedDim;
  const lpb = d.layersPerBlock;

  const resnet = (path: string, sgm: string, inC: number, outC: number) => {
    add(`${path}.conv1`, `${sgm}.in_layers.2`, [outC, inC, 3, 3], "resnet");
    add(`${path}.time_emb_proj`, `${sgm}.emb_layers.1`, [outC, T], "resnet");
    add(`${path}.conv2`, `${sgm}.out_layers.3`, [outC, outC, 3, 3], "resnet");
    if (inC !== outC) add(`${path}.conv_shortcut`, `${sgm}.skip_connection`, [outC, inC, 1, 1], "resnet");
  };
  const transformer = (path: string, sgm: string, dim: number) => {
    const proj = d.useLinearProjection ? [dim, dim] : [dim, dim, 1, 1];
    const block = "transformer_blocks.0";
    const linear: [string, number[]][] = [
      ["proj_in", proj],
      [`${block}.attn1.to_q`, [dim, dim]],
      [`${block}.attn1.to_k`, [dim, dim]],
      [`${block}.attn1.to_v`, [dim, dim]],
      [`${block}.attn1.to_out.0`, [dim, dim]],
      [`${block}.attn2.to_q`, [dim, dim]],
      [`${block}.attn2.to_k`, [dim, d.crossAttentionDim]],
      [`${block}.attn2.to_v`, [dim, d.crossAttentionDim]],
      [`${block}.attn2.to_out.0`, [dim, dim]],
      [`${block}.ff.net.0.proj`, [dim * 8, dim]],
      [`${block}.ff.net.2`, [dim, dim * 4]],
      ["proj_out", proj],
    ];
    for (const [name, shape] of linear) add(`${path}.${name}`, `${sgm}.${name}`, shape, "transformer");
  };

  add("conv_in", "input_blocks.0.0", [c0, d.inChannels, 3, 3], "other");
  add("time_embedding.linear_1", "time_embed.0", [T, c0], "other");
  add("time_embedding.linear_2", "time_embed.2", [T, T], "other");
  if (d.addition !== undefined) {
    const inputs = d.addition.textEmbedsDim + d.addition.timeIdsSize * d.addition.timeEmbedDim;
    add("add_embedding.linear_1", "label_emb.0.0", [T, inputs], "other");
    add("add_embedding.linear_2", "label_emb.0.2", [T, T], "other");
  }

  let input = 0;
  const skips: number[] = [c0];
  for (let i = 0; i < levels; i++) {
    const inC = d.blockOutChannels[i - 1] ?? c0;
    const outC = d.blockOutChannels[i] as number;
    for (let j = 0; j < lpb; j++) {
      input++;
      resnet(`down_blocks.${i}.resnets.${j}`, `input_blocks.${input}.0`, j === 0 ? inC : outC, outC);
      if (d.crossAttention[i])
        transformer(`down_blocks.${i}.attentions.${j}`, `input_blocks.${input}.1`, outC);
      skips.push(outC);
    }
    if (i < levels - 1) {
      input++;
      add(
        `down_blocks.${i}.downsamplers.0.conv`,
        `input_blocks.${input}.0.op`,
        [outC, outC, 3, 3],
        "sampler",
      );
      skips.push(outC);
    }
  }

  const mid = d.blockOutChannels[levels - 1] as number;
  resnet("mid_block.resnets.0", "middle_block.0", mid, mid);
  transformer("mid_block.attentions.0", "middle_block.1", mid);
  resnet("mid_block.resnets.1", "middle_block.2", mid, mid);

  let output = 0;
  let channels = mid;
  for (let i = 0; i < levels; i++) {
    const level = levels - 1 - i;
    const outC = d.blockOutChannels[level] as number;
    const attention = d.crossAttention[level] as boolean;
    for (let j = 0; j <= lpb; j++) {
      const skip = skips.pop() as number;
      resnet(`up_blocks.${i}.resnets.${j}`, `output_blocks.${output}.0`, channels + skip, outC);
      channels = outC;
      if (attention) transformer(`up_blocks.${i}.attentions.${j}`, `output_blocks.${output}.1`, outC);
      if (j === lpb && i < levels - 1) {
        const position = attention ? 2 : 1;
        add(
          `up_blocks.${i}.upsamplers.0.conv`,
          `output_blocks.${output}.${position}.conv`,
          [outC, outC, 3, 3],
          "sampler",
        );
      }
      output++;
    }
  }
  add("conv_out", "out.2", [d.outChannels, c0, 3, 3], "other");
  return out;
}

function textModules(component: TinyComponent, d: TextEncoderDims): TinyModule[] {
  const out: TinyModule[] = [];
  const h = d.hiddenSize;
  for (let i = 0; i < d.numLayers; i++) {
    const layer = `text_model.encoder.layers.${i}`;
    for (const p of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
      out.push({ component, path: `${layer}.self_attn.${p}`, shape: [h, h], group: "text" });
    }
    out.push({ component, path: `${layer}.mlp.fc1`, shape: [d.intermediateSize, h], group: "text" });
    out.push({ component, path: `${layer}.mlp.fc2`, shape: [h, d.intermediateSize], group: "text" });
  }
  if (d.withProjection)
    out.push({ component, path: "text_projection", shape: [d.projectionDim, h], group: "other" });
  return out;
}

/** Every adaptable module of the tiny model with these dims, UNet first, then the text encoders. */
export function tinyAdapterModules(dims: TinyModelDims): TinyModule[] {
  return [
    ...unetModules(dims.unet),
    ...(dims.textEncoder ? textModules("text_encoder", dims.textEncoder) : []),
    ...(dims.textEncoder2 ? textModules("text_encoder_2", dims.textEncoder2) : []),
  ];
}
