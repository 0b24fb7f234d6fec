import type { RunClock } from "@dmesh/onnx";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { NoiseSource } from "../random/index.js";
import { type Planes, runTiled } from "../vae/tiled-vae.js";
import { LATENT_CHANNELS, type Vae } from "../vae/vae.js";
import type { VaeTiling } from "../vae/vae-tiling.js";
import type { BufferPool } from "./buffer-pool.js";
import { modelRun } from "./model-run-span.js";
import { vaeOutputToRgb8InTurns } from "./pixels.js";

/** The VAE a request runs (a `models.vae` suite, or undefined for the model's own) and its tiling. */
export interface RequestVae {
  readonly vae: Vae | undefined;
  readonly tiling: VaeTiling | undefined;
}

/** What the VAE encoder says about one image: the posterior mean, and its log-variance when the export returns it. */
export interface LatentDistribution {
  readonly mean: Float32Array;
  readonly logvar: Float32Array | undefined;
}

/** Runs the VAE encoder on NCHW pixels in [-1, 1] (one image), in tiles when `tiling` says so. */
export async function encodeImage(
  vae: Vae,
  pixels: Float32Array,
  height: number,
  width: number,
  clock: RunClock,
  tiling?: VaeTiling,
): Promise<LatentDistribution> {
  const encoder = vae.encoder;
  const output = vae.encoderOutput;
  if (!encoder || !output) throw new InvalidArgumentError(vae.field, `"${vae.id}" has no vae_encoder`);
  const tile = tiling?.sampleTile ?? 0;
  const tiled = tiling !== undefined && (height > tile || width > tile);
  const run = async (part: Planes): Promise<Planes> => {
    const out = await modelRun(vae.id, "vae_encoder", () =>
      encoder.run(
        { sample: { data: part.data, dims: [1, 3, part.height, part.width] } },
        { clock, outputs: [output] },
      ),
    );
    const result = out[output];
    if (!result) throw new Error(`vae_encoder did not return ${output}`);
    const [, channels = LATENT_CHANNELS, h = part.height / 8, w = part.width / 8] = result.dims;
    // Tiles are copied: each outlives the runs after it, so none may be a view of memory a session could reuse.
    return { data: tiled ? result.data.slice() : result.data, channels, height: h, width: w };
  };
  const image: Planes = { data: pixels, channels: 3, height, width };
  const moments = tiled ? await runTiled(image, tile, tile / 8, run) : await run(image);
  const size = LATENT_CHANNELS * (height / 8) * (width / 8);
  const withLogvar = moments.channels === 2 * LATENT_CHANNELS;
  return {
    mean: moments.data.subarray(0, size),
    logvar: withLogvar ? moments.data.subarray(size, 2 * size) : undefined,
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

/** Decodes one image's latents (as the denoising loop leaves them) to interleaved RGB8, in tiles when `tiling` says so. */
export async function decodeLatents(
  vae: Vae,
  latents: Float32Array,
  height: number,
  width: number,
  clock: RunClock,
  buffers: BufferPool,
  tiling?: VaeTiling,
): Promise<Uint8Array> {
  // `latents / scaling_factor`, a float32 tensor op in diffusers.
  const factor = Math.fround(vae.scalingFactor);
  const scaled = buffers.take(latents.length);
  for (let i = 0; i < latents.length; i++) scaled[i] = (latents[i] as number) / factor;
  try {
    const output = vae.decoderOutput;
    const latent: Planes = { data: scaled, channels: LATENT_CHANNELS, height: height / 8, width: width / 8 };
    const tile = (tiling?.sampleTile ?? 0) / 8;
    const tiled = tiling !== undefined && (latent.height > tile || latent.width > tile);
    const run = async (part: Planes): Promise<Planes> => {
      const decoded = await modelRun(vae.id, "vae_decoder", () =>
        vae.decoder.run(
          { latent_sample: { data: part.data, dims: [1, LATENT_CHANNELS, part.height, part.width] } },
          { clock, outputs: [output] },
        ),
      );
      const sample = decoded[output];
      if (!sample) throw new Error(`vae_decoder did not return ${output}`);
      // Tiles are copied: each outlives the runs after it, so none may be a view of memory a session could reuse.
      const data = tiled ? sample.data.slice() : sample.data;
      return { data, channels: 3, height: part.height * 8, width: part.width * 8 };
    };
    const sample = tiled ? await runTiled(latent, tile, tile * 8, run) : await run(latent);
    return await vaeOutputToRgb8InTurns(sample.data, height, width);
  } finally {
    buffers.give([scaled]);
  }
}
