// kohya-ss trains SDXL on its copy of the original (Stability "SGM") UNet, so its SDXL LoRAs name UNet
// modules as that model does: `input_blocks.4.1.transformer_blocks.0.attn1.to_q`, `middle_block.1.…`,
// `output_blocks.2.2.conv`, with resnets as `in_layers.2`/`emb_layers.1`/`out_layers.3`/`skip_connection`.
// diffusers reads them in `_maybe_map_sgm_blocks_to_diffusers` (loaders/lora_conversion_utils.py):
// input block i is down block (i-1) // (layers_per_block+1), layer (i-1) % (layers_per_block+1), its
// sub-module 0 the resnet and 1 the attention, and `op` the downsampler; middle blocks 0, 1, 2 are
// resnets.0, attentions.0, resnets.1; output block i is up block i // (layers_per_block+1), layer
// i % (layers_per_block+1), sub-module 0 resnet, 1 attention, and the upsampler after them. Here the
// same correspondence runs the other way, from each of the model's own diffusers modules to its SGM
// name, so a key is resolved against modules that exist rather than rewritten by guesswork.

/** diffusers ResnetBlock2D parameter → SGM ResBlock parameter. */
const RESNET_PARTS: Readonly<Record<string, string>> = {
  norm1: "in_layers.0",
  conv1: "in_layers.2",
  time_emb_proj: "emb_layers.1",
  norm2: "out_layers.0",
  conv2: "out_layers.3",
  conv_shortcut: "skip_connection",
};

const FIXED: Readonly<Record<string, string>> = {
  conv_in: "input_blocks.0.0",
  "time_embedding.linear_1": "time_embed.0",
  "time_embedding.linear_2": "time_embed.2",
  "add_embedding.linear_1": "label_emb.0.0",
  "add_embedding.linear_2": "label_emb.0.2",
  conv_norm_out: "out.0",
  conv_out: "out.2",
};

export interface UnetLayout {
  /** The UNet config's `layers_per_block` (up blocks hold one layer more). */
  readonly layersPerBlock: number;
  /** Whether up block `index` has attentions: its upsampler then comes third in its SGM output block. */
  readonly upBlockHasAttentions: (index: number) => boolean;
}

/** The SGM name of a diffusers UNet module path, or undefined for a module SGM names otherwise. */
export function sgmModulePath(path: string, layout: UnetLayout): string | undefined {
  const fixed = FIXED[path];
  if (fixed !== undefined) return fixed;
  const per = layout.layersPerBlock + 1;
  let m = /^(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(path);
  if (m) {
    const [, direction, blockText, kind, layerText, rest] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const block = Number(blockText);
    const layer = Number(layerText);
    if (layer >= (direction === "down" ? layout.layersPerBlock : per)) return undefined;
    const inner = kind === "resnets" ? RESNET_PARTS[rest] : rest;
    if (inner === undefined) return undefined;
    const sub = kind === "resnets" ? 0 : 1;
    return direction === "down"
      ? `input_blocks.${1 + block * per + layer}.${sub}.${inner}`
      : `output_blocks.${block * per + layer}.${sub}.${inner}`;
  }
  m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv$/.exec(path);
  if (m) return `input_blocks.${(Number(m[1]) + 1) * per}.0.op`;
  m = /^up_blocks\.(\d+)\.upsamplers\.0\.conv$/.exec(path);
  if (m) {
    const block = Number(m[1]);
    return `output_blocks.${block * per + layout.layersPerBlock}.${layout.upBlockHasAttentions(block) ? 2 : 1}.conv`;
  }
  m = /^mid_block\.(resnets\.[01]|attentions\.0)\.(.+)$/.exec(path);
  if (m) {
    const [, part, rest] = m as unknown as [string, string, string];
    if (part === "attentions.0") return `middle_block.1.${rest}`;
    const inner = RESNET_PARTS[rest];
    return inner === undefined ? undefined : `middle_block.${part === "resnets.0" ? 0 : 2}.${inner}`;
  }
  return undefined;
}

/** The layout of a UNet as its module list shows it. */
export function unetLayoutOf(modulePaths: Iterable<string>, layersPerBlock: number): UnetLayout {
  const withAttentions = new Set<number>();
  for (const path of modulePaths) {
    const m = /^up_blocks\.(\d+)\.attentions\./.exec(path);
    if (m) withAttentions.add(Number(m[1]));
  }
  return { layersPerBlock, upBlockHasAttentions: (index) => withAttentions.has(index) };
}
