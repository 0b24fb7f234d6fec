import type { OptionSpecs } from "./scheduler-config.js";
import { SchedulerInputError } from "./scheduler-config.js";
import { f32, lerpF32 } from "./torch-numerics.js";

export const thresholdingOptions = {
  thresholding: {
    type: "boolean",
    default: false,
    description: "Dynamic thresholding of the predicted clean sample (Imagen); unsuited to latent models.",
  },
  dynamic_thresholding_ratio: {
    type: "number",
    default: 0.995,
    min: 0,
    max: 1,
    description: "Quantile of |x0| used as the threshold when thresholding.",
  },
  sample_max_value: {
    type: "number",
    default: 1.0,
    description: "Upper bound of the dynamic threshold.",
  },
} as const satisfies OptionSpecs;

export interface ThresholdingConfig {
  readonly dynamic_thresholding_ratio: number;
  readonly sample_max_value: number;
}

/**
 * diffusers' `_threshold_sample`: per image, s = clamp(quantile(|x|, ratio), 1, sample_max_value), then x is
 * clamped to [-s, s] and divided by s. The quantile interpolates linearly as `torch.quantile` does.
 */
export function thresholdSample(
  x: Float32Array,
  batchSize: number,
  config: ThresholdingConfig,
): Float32Array {
  if (!Number.isInteger(batchSize) || batchSize < 1 || x.length % batchSize !== 0) {
    throw new SchedulerInputError(
      "batch_size",
      `must divide the ${x.length} sample values, got ${batchSize}`,
    );
  }
  const out = new Float32Array(x.length);
  const perImage = x.length / batchSize;
  for (let b = 0; b < batchSize; b++) {
    const image = x.subarray(b * perImage, (b + 1) * perImage);
    const sorted = image.map(Math.abs).sort();
    const rank = f32(f32(config.dynamic_thresholding_ratio) * (perImage - 1));
    const below = Math.trunc(rank);
    const quantile = lerpF32(sorted[below] as number, sorted[Math.ceil(rank)] as number, f32(rank - below));
    const s = Math.min(Math.max(quantile, 1), f32(config.sample_max_value));
    for (let i = 0; i < perImage; i++) {
      out[b * perImage + i] = Math.min(Math.max(image[i] as number, -s), s) / s;
    }
  }
  return out;
}
