import type { TextEncoderDims, UnetDims, VaeDims } from "../dims.js";
import type { TinyModelOptions } from "../options.js";

// Each sub-model's config.json as transformers/diffusers write them (optimum copies them next to each
// model.onnx), with the tiny dims, so consumers read metadata instead of hard-coding SDXL's numbers.

const DIFFUSERS_VERSION = "0.19.0.dev0";
const TRANSFORMERS_VERSION = "4.32.0.dev0";

/** transformers' CLIPTextConfig. */
export function textEncoderConfig(d: TextEncoderDims): Record<string, unknown> {
  return {
    architectures: [d.withProjection ? "CLIPTextModelWithProjection" : "CLIPTextModel"],
    attention_dropout: 0.0,
    bos_token_id: d.bosTokenId,
    dropout: 0.0,
    eos_token_id: d.eosTokenId,
    hidden_act: d.hiddenAct,
    hidden_size: d.hiddenSize,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    intermediate_size: d.intermediateSize,
    layer_norm_eps: 1e-5,
    max_position_embeddings: d.maxPositions,
    model_type: "clip_text_model",
    num_attention_heads: d.numHeads,
    num_hidden_layers: d.numLayers,
    pad_token_id: d.padTokenId,
    projection_dim: d.projectionDim,
    torch_dtype: "float32",
    transformers_version: TRANSFORMERS_VERSION,
    vocab_size: d.vocabSize,
  };
}

/** diffusers' UNet2DConditionModel config describing exactly the graph `buildUnet` makes. */
export function unetConfig(d: UnetDims): Record<string, unknown> {
  const a = d.addition;
  const down = d.crossAttention.map((x) => (x ? "CrossAttnDownBlock2D" : "DownBlock2D"));
  const up = [...d.crossAttention].reverse().map((x) => (x ? "CrossAttnUpBlock2D" : "UpBlock2D"));
  return {
    _class_name: "UNet2DConditionModel",
    _diffusers_version: DIFFUSERS_VERSION,
    act_fn: "silu",
    addition_embed_type: a === undefined ? null : "text_time",
    addition_embed_type_num_heads: 64,
    addition_time_embed_dim: a === undefined ? null : a.timeEmbedDim,
    attention_head_dim: d.attentionHeads,
    block_out_channels: d.blockOutChannels,
    center_input_sample: false,
    class_embed_type: null,
    class_embeddings_concat: false,
    conv_in_kernel: 3,
    conv_out_kernel: 3,
    cross_attention_dim: d.crossAttentionDim,
    cross_attention_norm: null,
    down_block_types: down,
    downsample_padding: 1,
    dual_cross_attention: false,
    encoder_hid_dim: null,
    encoder_hid_dim_type: null,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: d.inChannels,
    layers_per_block: d.layersPerBlock,
    mid_block_only_cross_attention: null,
    mid_block_scale_factor: 1,
    mid_block_type: "UNetMidBlock2DCrossAttn",
    norm_eps: 1e-5,
    norm_num_groups: d.normGroups,
    num_attention_heads: null,
    num_class_embeds: null,
    only_cross_attention: false,
    out_channels: d.outChannels,
    projection_class_embeddings_input_dim:
      a === undefined ? null : a.textEmbedsDim + a.timeIdsSize * a.timeEmbedDim,
    resnet_out_scale_factor: 1.0,
    resnet_skip_time_act: false,
    resnet_time_scale_shift: "default",
    sample_size: d.sampleSize,
    time_cond_proj_dim: null,
    time_embedding_act_fn: null,
    time_embedding_dim: null,
    time_embedding_type: "positional",
    timestep_post_act: null,
    transformer_layers_per_block: d.crossAttention.map(() => 1),
    up_block_types: up,
    upcast_attention: a === undefined ? false : null,
    use_linear_projection: d.useLinearProjection,
  };
}

/**
 * diffusers' AutoencoderKL config. The fields consumers read are exact (latent_channels, scaling_factor,
 * and 2^(len(block_out_channels) − 1) = 8 for the scale); the tiny VAE's layers inside are simplified.
 */
export function vaeConfig(d: VaeDims, kind: TinyModelOptions["kind"]): Record<string, unknown> {
  const levels = d.resolutionSteps + 1;
  return {
    _class_name: "AutoencoderKL",
    _diffusers_version: DIFFUSERS_VERSION,
    act_fn: "silu",
    block_out_channels: Array(levels).fill(d.channels),
    down_block_types: Array(levels).fill("DownEncoderBlock2D"),
    ...(kind !== "sd15" && kind !== "sd2" && { force_upcast: true }),
    in_channels: 3,
    latent_channels: d.latentChannels,
    layers_per_block: 1,
    norm_num_groups: 4,
    out_channels: 3,
    sample_size: d.sampleSize,
    scaling_factor: d.scalingFactor,
    up_block_types: Array(levels).fill("UpDecoderBlock2D"),
  };
}

/** diffusers' AutoencoderTiny config, as a TAESD decoder's directory carries it (latents go in unscaled). */
export function taesdConfig(d: VaeDims): Record<string, unknown> {
  return {
    _class_name: "AutoencoderTiny",
    _diffusers_version: DIFFUSERS_VERSION,
    in_channels: 3,
    out_channels: 3,
    latent_channels: d.latentChannels,
    latent_magnitude: 3,
    latent_shift: 0.5,
    scaling_factor: 1.0,
    upsampling_scaling_factor: 2,
  };
}
