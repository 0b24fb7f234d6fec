import type { TinyModelOptions } from "./options.js";

/** Sizes of one CLIP text encoder (transformers' CLIPTextConfig fields). */
export interface TextEncoderDims {
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly intermediateSize: number;
  readonly maxPositions: number;
  readonly vocabSize: number;
  readonly hiddenAct: "quick_gelu" | "gelu";
  /** Width of `text_embeds` (CLIPTextModelWithProjection); CLIPTextModel records it but has no projection. */
  readonly projectionDim: number;
  readonly withProjection: boolean;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
}

/** Sizes of the UNet (diffusers' UNet2DConditionModel config fields). */
export interface UnetDims {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly blockOutChannels: readonly number[];
  /** Per level: whether the block has cross-attention transformers. */
  readonly crossAttention: readonly boolean[];
  /** Per level: number of heads (diffusers calls this `attention_head_dim`). */
  readonly attentionHeads: readonly number[];
  readonly layersPerBlock: number;
  readonly normGroups: number;
  readonly crossAttentionDim: number;
  /** Transformer2DModel proj_in/proj_out as Linear (SDXL) or as 1×1 Conv (SD 1.x). */
  readonly useLinearProjection: boolean;
  readonly timeEmbedDim: number;
  /** SDXL's `text_time` added conditioning; undefined for SD 1.x. */
  readonly addition?: {
    readonly textEmbedsDim: number;
    readonly timeIdsSize: number;
    readonly timeEmbedDim: number;
  };
  readonly sampleSize: number;
}

/** Sizes and constants of the VAE. */
export interface VaeDims {
  readonly latentChannels: number;
  readonly scalingFactor: number;
  /** Width of the decoder's and encoder's working feature maps. */
  readonly channels: number;
  /** Each halves (encoder) or doubles (decoder) the resolution: 3 → 8× like SD/SDXL. */
  readonly resolutionSteps: number;
  /** latent (4, scaled) → RGB approximation, rows per latent channel (ComfyUI's latent_rgb_factors). */
  readonly latentRgbFactors: readonly (readonly number[])[];
  readonly latentRgbBias: readonly number[];
  readonly sampleSize: number;
}

export interface TinyModelDims {
  readonly textEncoder?: TextEncoderDims;
  readonly textEncoder2?: TextEncoderDims;
  readonly unet: UnetDims;
  readonly vae: VaeDims;
}

export const MAX_POSITIONS = 77;

// Known approximations of the real VAEs' latent → RGB maps, so the tiny decoder paints in the colours
// the real one would roughly give the same latents.
const SDXL_LATENT_RGB = [
  [0.3651, 0.4232, 0.4341],
  [-0.2533, -0.0042, 0.1068],
  [0.1076, 0.1111, -0.0362],
  [-0.3165, -0.2492, -0.2188],
];
const SDXL_LATENT_RGB_BIAS = [0.1084, -0.0175, -0.0011];
const SD15_LATENT_RGB = [
  [0.3512, 0.2297, 0.3227],
  [0.325, 0.4974, 0.235],
  [-0.2829, 0.1762, 0.2721],
  [-0.212, -0.2616, -0.7177],
];

/** Token ids that depend on the vocabulary: the two special tokens are its last two entries. */
export interface VocabularyIds {
  readonly vocabSize: number;
  /** Id of "!" (SDXL's tokenizer_2 pads with it). */
  readonly exclamationId: number;
}

export function tinyModelDims(options: TinyModelOptions, vocab: VocabularyIds): TinyModelDims {
  const bosTokenId = vocab.vocabSize - 2;
  const eosTokenId = vocab.vocabSize - 1;
  const clipL: TextEncoderDims = {
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 2,
    intermediateSize: 128,
    maxPositions: MAX_POSITIONS,
    vocabSize: vocab.vocabSize,
    hiddenAct: "quick_gelu",
    projectionDim: 32,
    withProjection: false,
    bosTokenId,
    eosTokenId,
    padTokenId: eosTokenId,
  };
  const clipG: TextEncoderDims = {
    hiddenSize: 64,
    numLayers: 3,
    numHeads: 4,
    intermediateSize: 256,
    maxPositions: MAX_POSITIONS,
    vocabSize: vocab.vocabSize,
    hiddenAct: "gelu",
    projectionDim: 48,
    withProjection: true,
    bosTokenId,
    eosTokenId,
    padTokenId: vocab.exclamationId,
  };
  // SD 2.x's OpenCLIP ViT-H text encoder: 1024 wide (what marks the family: cross_attention_dim 1024), GELU,
  // padding with "!"; one layer keeps it small.
  const clipH: TextEncoderDims = {
    ...clipL,
    hiddenSize: 1024,
    numLayers: 1,
    intermediateSize: 64,
    hiddenAct: "gelu",
    padTokenId: vocab.exclamationId,
  };
  const sd = options.kind === "sd15" || options.kind === "sd2";
  const textEncoder = options.kind === "sdxl-refiner" ? undefined : options.kind === "sd2" ? clipH : clipL;
  const textEncoder2 = sd ? undefined : clipG;
  const crossAttentionDim = (textEncoder?.hiddenSize ?? 0) + (textEncoder2?.hiddenSize ?? 0);
  const timeIdsSize = options.kind === "sdxl-refiner" ? 5 : 6;
  const addition =
    textEncoder2 === undefined
      ? undefined
      : { textEmbedsDim: textEncoder2.projectionDim, timeIdsSize, timeEmbedDim: 8 };
  const sdxl = !sd;
  return {
    ...(textEncoder && { textEncoder }),
    ...(textEncoder2 && { textEncoder2 }),
    unet: {
      inChannels: options.unetInChannels,
      outChannels: 4,
      // Attention sits on the lower level only (as SDXL keeps it off its top level), so large images stay cheap.
      blockOutChannels: [16, 32],
      crossAttention: [false, true],
      attentionHeads: [1, 2],
      layersPerBlock: options.layersPerBlock,
      normGroups: 4,
      crossAttentionDim,
      useLinearProjection: options.kind !== "sd15",
      timeEmbedDim: 64,
      ...(addition && { addition }),
      // SD 2.x (768-v) is native at 768: sample_size 96.
      sampleSize: options.kind === "sd2" ? 96 : 32,
    },
    vae: {
      latentChannels: 4,
      scalingFactor: sdxl ? 0.13025 : 0.18215,
      channels: 8,
      resolutionSteps: 3,
      latentRgbFactors: sdxl ? SDXL_LATENT_RGB : SD15_LATENT_RGB,
      latentRgbBias: sdxl ? SDXL_LATENT_RGB_BIAS : [0, 0, 0],
      sampleSize: 256,
    },
  };
}
