import type { RunClock } from "@dmesh/onnx";
import type { LoadedModel } from "../models/loaded-model.js";
import { isSdxlFamily } from "../models/pipeline-directory.js";
import { latentPreview } from "../pipeline/latent-preview.js";
import { modelRun } from "../pipeline/model-run-span.js";
import { vaeOutputToRgb8 } from "../pipeline/pixels.js";
import { LATENT_CHANNELS } from "./vae.js";

/** A live preview's longest side: a TAESD decode is full size, which a progress stream need not carry. */
export const MAX_PREVIEW_SIDE = 512;

export interface StepPreview {
  readonly width: number;
  readonly height: number;
  readonly rgb: Uint8Array;
}

/**
 * A preview of one image's latents mid-denoise: decoded by the model's TAESD-layout decoder when it has one
 * (then box-averaged down to at most MAX_PREVIEW_SIDE), else the linear latent→RGB approximation at latent size.
 */
export async function stepPreview(
  model: LoadedModel,
  latents: Float32Array,
  latentHeight: number,
  latentWidth: number,
  clock: RunClock,
): Promise<StepPreview> {
  const decoder = model.previewDecoder;
  if (!decoder) {
    const sdxl = isSdxlFamily(model.dir.family);
    return {
      width: latentWidth,
      height: latentHeight,
      rgb: latentPreview(latents, latentHeight, latentWidth, sdxl),
    };
  }
  // A copy, divided by the decoder's scaling factor: the denoising loop keeps its own latents.
  const factor = Math.fround(decoder.scalingFactor);
  const input = Float32Array.from(
    latents.subarray(0, LATENT_CHANNELS * latentHeight * latentWidth),
    (v) => v / factor,
  );
  const out = await modelRun(model.dir.id, "taesd_decoder", () =>
    decoder.session.run(
      { latent_sample: { data: input, dims: [1, LATENT_CHANNELS, latentHeight, latentWidth] } },
      { clock, outputs: [decoder.output] },
    ),
  );
  const sample = out[decoder.output];
  if (!sample) throw new Error(`taesd_decoder did not return ${decoder.output}`);
  const height = latentHeight * 8;
  const width = latentWidth * 8;
  const rgb = vaeOutputToRgb8(sample.data, height, width);
  return boxDownscale(rgb, height, width, Math.ceil(Math.max(height, width) / MAX_PREVIEW_SIDE));
}

/** Averages k × k blocks of interleaved RGB8 (edges keep their partial blocks). */
function boxDownscale(rgb: Uint8Array, height: number, width: number, k: number): StepPreview {
  if (k <= 1) return { width, height, rgb };
  const h = Math.ceil(height / k);
  const w = Math.ceil(width / k);
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        let n = 0;
        for (let dy = 0; dy < k && y * k + dy < height; dy++) {
          for (let dx = 0; dx < k && x * k + dx < width; dx++) {
            sum += rgb[((y * k + dy) * width + x * k + dx) * 3 + c] as number;
            n++;
          }
        }
        out[(y * w + x) * 3 + c] = Math.round(sum / n);
      }
    }
  }
  return { width: w, height: h, rgb: out };
}
