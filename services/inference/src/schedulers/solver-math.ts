import { type ThresholdingConfig, thresholdSample } from "./thresholding.js";
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

/**
 * Learned-variance models (variance_type "learned" / "learned_range") output twice the channels; the solvers
 * use the first half of each image.
 */
export function meanOfLearnedVariance(
  modelOutput: Float32Array,
  sample: Float32Array,
  batchSize: number,
): Float32Array {
  if (modelOutput.length !== 2 * sample.length) return modelOutput;
  const perImage = sample.length / batchSize;
  const mean = new Float32Array(sample.length);
  for (let b = 0; b < batchSize; b++) {
    mean.set(modelOutput.subarray(2 * b * perImage, (2 * b + 1) * perImage), b * perImage);
  }
  return mean;
}

/**
 * DPM-Solver's `convert_model_output`: the (optionally thresholded) data prediction for the ++ algorithms,
 * the noise prediction (with x0 thresholded through it) for the others.
 */
export function dpmSolverOutput(
  config: ThresholdingConfig & {
    readonly algorithm_type: string;
    readonly prediction_type: "epsilon" | "sample" | "v_prediction";
    readonly thresholding: boolean;
  },
  output: Float32Array,
  sample: Float32Array,
  level: NoiseLevel,
  batch: number,
): Float32Array {
  if (config.algorithm_type.endsWith("++")) {
    const x0 = dataPrediction(config.prediction_type, output, sample, level);
    return config.thresholding ? thresholdSample(x0, batch, config) : x0;
  }
  const eps = noisePrediction(config.prediction_type, output, sample, level);
  if (!config.thresholding) return eps;
  const x0 = thresholdSample(dataPrediction("epsilon", eps, sample, level), batch, config);
  return sample.map((x, i) => f32(x - f32(level.alpha * (x0[i] as number))) / level.sigma);
}
