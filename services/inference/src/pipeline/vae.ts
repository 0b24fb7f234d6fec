import type { RunClock } from "@dmesh/onnx";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { LATENT_CHANNELS, type LoadedModel } from "../models/loaded-model.js";
import type { NoiseSource } from "../random/index.js";
import type { BufferPool } from "./buffer-pool.js";
import { modelRun } from "./model-run-span.js";
import { vaeOutputToRgb8 } from "./pixels.js";

/** What the VAE encoder says about one image: the posterior mean, and its log-variance when the export returns it. */
export interface LatentDistribution {
  readonly mean: Float32Array;
  readonly logvar: Float32Array | undefined;
}

/** Runs the VAE encoder on NCHW pixels in [-1, 1] (one image). */
export async function encodeImage(
  model: LoadedModel,
  pixels: Float32Array,
  height: number,
  width: number,
  clock: RunClock,
): Promise<LatentDistribution> {
  const encoder = model.vaeEncoder;
  const output = model.contract.vaeEncoderOutput;
  if (!encoder || !output)
    throw new InvalidArgumentError("spec.models.base", `model "${model.dir.id}" has no vae_encoder`);
  const out = await modelRun(model.dir.id, "vae_encoder", () =>
    encoder.run({ sample: { data: pixels, dims: [1, 3, height, width] } }, { clock, outputs: [output] }),
  );
  const result = out[output];
  if (!result) throw new Error(`vae_encoder did not return ${output}`);
  const size = LATENT_CHANNELS * (height / 8) * (width / 8);
  const withLogvar = (result.dims[1] ?? LATENT_CHANNELS) === 2 * LATENT_CHANNELS;
  return {
    mean: result.data.subarray(0, size),
    logvar: withLogvar ? result.data.subarray(size, 2 * size) : undefined,
  };
}

/**
 * diffusers' `retrieve_latents(sample_mode="sample")` times the scaling factor: mean + std * noise drawn from
 * the image's generator (an export that returns only the mean draws nothing).
 */
export function sampleLatents(
  dist: LatentDistribution,
  generator: NoiseSource,
  scalingFactor: number,
): Float32Array {
  const { mean, logvar } = dist;
  const factor = Math.fround(scalingFactor);
  if (!logvar) return mean.map((m) => m * factor);
  const eps = generator.randn(mean.length);
  return mean.map((m, i) => {
    const std = Math.fround(Math.exp(0.5 * Math.min(20, Math.max(-30, logvar[i] as number))));
    return Math.fround(m + Math.fround(std * (eps[i] as number))) * factor;
  });
}

/** Decodes one image's latents (as the denoising loop leaves them) to interleaved RGB8. */
export async function decodeLatents(
  model: LoadedModel,
  latents: Float32Array,
  height: number,
  width: number,
  clock: RunClock,
  buffers: BufferPool,
): Promise<Uint8Array> {
  // `latents / scaling_factor`, a float32 tensor op in diffusers.
  const factor = Math.fround(model.dir.vaeScalingFactor);
  const scaled = buffers.take(latents.length);
  for (let i = 0; i < latents.length; i++) scaled[i] = (latents[i] as number) / factor;
  try {
    const output = model.contract.vaeDecoderOutput;
    const decoded = await modelRun(model.dir.id, "vae_decoder", () =>
      model.vaeDecoder.run(
        { latent_sample: { data: scaled, dims: [1, LATENT_CHANNELS, height / 8, width / 8] } },
        { clock, outputs: [output] },
      ),
    );
    const sample = decoded[output];
    if (!sample) throw new Error(`vae_decoder did not return ${output}`);
    return vaeOutputToRgb8(sample.data, height, width);
  } finally {
    buffers.give([scaled]);
  }
}
