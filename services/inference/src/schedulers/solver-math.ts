import { f32 } from "./torch-numerics.js";

/**
 * The alpha/sigma parametrisation the DPM-Solver family (DPM-Solver, DEIS, UniPC) steps in: for a
 * k-diffusion sigma, alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t and the half log-SNR
 * lambda = log(alpha_t) - log(sigma_t), each rounded to float32 as torch computes them.
 */
export interface NoiseLevel {
  readonly alpha: number;
  readonly sigma: number;
  readonly lambda: number;
}

export function noiseLevel(sigma: number): NoiseLevel {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  const sigmaT = f32(sigma * alpha);
  return { alpha, sigma: sigmaT, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(sigmaT))) };
}

export const exp32 = (x: number): number => f32(Math.exp(x));

/** scale * (a - b) elementwise, in float32. */
export function scaledDifference(a: Float32Array, b: Float32Array, scale: number): Float32Array {
  return a.map((v, i) => f32(scale * f32(v - (b[i] as number))));
}

/**
 * sampleScale * x + sum(coefficient * tensor), accumulated left to right in float32 as torch evaluates the
 * update formulas. A subtraction `- c * t` is the addition of `(-c) * t`, which rounds identically.
 */
export function combine(
  x: Float32Array,
  sampleScale: number,
  ...terms: [Float32Array, number][]
): Float32Array {
  return x.map((v, i) => {
    let acc = f32(sampleScale * v);
    for (const [tensor, c] of terms) acc = f32(acc + f32(c * (tensor[i] as number)));
    return acc;
  });
}

/**
 * The data prediction x0 from a model output at a noise level (DPM-Solver++, DEIS and UniPC's
 * `convert_model_output`): epsilon, the sample itself, or v.
 */
export function dataPrediction(
  predictionType: "epsilon" | "sample" | "v_prediction",
  output: Float32Array,
  sample: Float32Array,
  level: NoiseLevel,
): Float32Array {
  const { alpha, sigma } = level;
  switch (predictionType) {
    case "epsilon":
      return sample.map((x, i) => f32(x - f32(sigma * (output[i] as number))) / alpha);
    case "sample":
      return Float32Array.from(output);
    case "v_prediction":
      return sample.map((x, i) => f32(alpha * x) - f32(sigma * (output[i] as number)));
  }
}

/** The noise prediction from a model output at a noise level (DPM-Solver, UniPC with predict_x0 false). */
export function noisePrediction(
  predictionType: "epsilon" | "sample" | "v_prediction",
  output: Float32Array,
  sample: Float32Array,
  level: NoiseLevel,
): Float32Array {
  const { alpha, sigma } = level;
  switch (predictionType) {
    case "epsilon":
      return Float32Array.from(output);
    case "sample":
      return sample.map((x, i) => f32(x - f32(alpha * (output[i] as number))) / sigma);
    case "v_prediction":
      return sample.map((x, i) => f32(alpha * (output[i] as number)) + f32(sigma * x));
  }
}
