import { vaeConfig } from "./configs/component-configs.js";
import type { VaeDims } from "./dims.js";
import { tinyModelDims } from "./dims.js";
import {
  type GeneratedModelManifest,
  type WriteModelDirectoryOptions,
  writeModelDirectory,
} from "./generated-directory.js";
import { ContentsBuilder } from "./generated-files.js";
import { buildVaeDecoder, buildVaeEncoder } from "./models/vae.js";
import { checkSeed, resolveTinyModelOptions, TinyModelOptionError } from "./options.js";

/** A separate VAE suite, as `ModelSuite.vae` names one (an fp16-safe SDXL VAE, say): VAE folders only. */
export interface TinyVaeOptions {
  /** The latent space: SDXL's (scaling 0.13025) or SD 1.x/2.x's (0.18215). */
  readonly kind: "sdxl" | "sd15";
  readonly seed: number;
  /** 4 as every SD/SDXL VAE; 16 makes a VAE of another latent space (SD3-like), which a suite must refuse. */
  readonly latentChannels: 4 | 16;
}

export type TinyVaeManifest = GeneratedModelManifest<TinyVaeOptions, VaeDims>;

export const VAE_ARTIFACT = "vae";

export function resolveTinyVaeOptions(options: Partial<TinyVaeOptions> = {}): TinyVaeOptions {
  const kind = options.kind ?? "sdxl";
  const latentChannels = options.latentChannels ?? 4;
  if (kind !== "sdxl" && kind !== "sd15") throw new TinyModelOptionError("kind", "must be sdxl or sd15");
  if (latentChannels !== 4 && latentChannels !== 16)
    throw new TinyModelOptionError("latentChannels", "must be 4 or 16");
  return { kind, seed: checkSeed(options.seed ?? 7), latentChannels };
}

/** Writes `vae_decoder/` and `vae_encoder/` (model.onnx and config.json each) into `dir`. */
export async function writeTinyVae(
  dir: string,
  options: Partial<TinyVaeOptions> = {},
  write: WriteModelDirectoryOptions = {},
): Promise<TinyVaeManifest> {
  const resolved = resolveTinyVaeOptions(options);
  const base = tinyModelDims(resolveTinyModelOptions({ kind: resolved.kind, seed: resolved.seed }), {
    vocabSize: 512,
    exclamationId: 0,
  }).vae;
  const extra = resolved.latentChannels - base.latentRgbFactors.length;
  const dims: VaeDims = {
    ...base,
    latentChannels: resolved.latentChannels,
    latentRgbFactors: [...base.latentRgbFactors, ...Array.from({ length: extra }, () => [0, 0, 0])],
  };
  const config = vaeConfig(dims, resolved.kind);
  const model = { seed: resolved.seed, vaeEncoderOutput: "latent_parameters" as const };
  const contents = new ContentsBuilder()
    .onnx("vae_decoder/model.onnx", buildVaeDecoder(dims, model))
    .json("vae_decoder/config.json", config)
    .onnx("vae_encoder/model.onnx", buildVaeEncoder(dims, model))
    .json("vae_encoder/config.json", config)
    .build();
  return writeModelDirectory(dir, VAE_ARTIFACT, resolved, dims, contents, write);
}
