import { betaQuantile } from "./beta-quantile.js";
import type { TimestepSpacing } from "./common-options.js";
import { arange, linspace, roundHalfEven } from "./numpy-numerics.js";
import { f32 } from "./torch-numerics.js";

/** sigma_t = sqrt((1 - alpha_prod_t) / alpha_prod_t) for every training step, in float32 as torch computes it. */
export function trainingSigmas(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => Math.sqrt(f32(f32(1 - a) / a)));
}

/** `np.log` of the float32 training sigmas (float32 results). */
export function logSigmas(sigmas: Float32Array): Float32Array {
  return sigmas.map(Math.log);
}

/** Timesteps as the k-diffusion style schedulers (Euler, Euler ancestral, Heun) space them, as float32. */
export function spacedFloatTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  n: number,
  stepsOffset: number,
): number[] {
  switch (spacing) {
    case "linspace":
      return linspace(0, numTrainTimesteps - 1, n)
        .map(f32)
        .reverse();
    case "leading": {
      const ratio = Math.floor(numTrainTimesteps / n);
      return Array.from({ length: n }, (_, i) => f32(i * ratio + stepsOffset)).reverse();
    }
    case "trailing":
      return arange(numTrainTimesteps, 0, -numTrainTimesteps / n).map((t) => f32(roundHalfEven(t) - 1));
  }
}

/** The Karras et al. (2022) schedule with rho = 7, as k-diffusion and diffusers build it (float64). */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): number[] {
  const rho = 7.0;
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return linspace(0, 1, n).map((ramp) => (maxInvRho + ramp * (minInvRho - maxInvRho)) ** rho);
}

/** sigmas evenly spaced in log between sigma_max and sigma_min (float64). */
export function exponentialSigmas(sigmaMin: number, sigmaMax: number, n: number): number[] {
  return linspace(Math.log(sigmaMax), Math.log(sigmaMin), n).map(Math.exp);
}

/**
 * Beta sigmas (arXiv:2407.12173): sigma_min + ppf(1 - ramp) * (sigma_max - sigma_min) with a Beta(0.6, 0.6)
 * quantile, from sigma_max down to sigma_min (float64), as diffusers' `_convert_to_beta`.
 */
export function betaSigmas(sigmaMin: number, sigmaMax: number, n: number, alpha = 0.6, beta = 0.6): number[] {
  return linspace(0, 1, n).map(
    (ramp) => sigmaMin + betaQuantile(1 - ramp, alpha, beta) * (sigmaMax - sigmaMin),
  );
}

/** The sigma spacings diffusers offers on top of the interpolated training sigmas. */
export type SigmaSpacingKind = "karras" | "exponential" | "beta";

/** A spacing's sigmas from sigma_max down to sigma_min. */
export function spacedSigmas(
  kind: SigmaSpacingKind,
  sigmaMin: number,
  sigmaMax: number,
  n: number,
): number[] {
  switch (kind) {
    case "karras":
      return karrasSigmas(sigmaMin, sigmaMax, n);
    case "exponential":
      return exponentialSigmas(sigmaMin, sigmaMax, n);
    case "beta":
      return betaSigmas(sigmaMin, sigmaMax, n);
  }
}

/** Which spacing a config's use_*_sigmas switches choose, if any. */
export function sigmaSpacingOf(config: {
  readonly use_karras_sigmas: boolean;
  readonly use_exponential_sigmas: boolean;
  readonly use_beta_sigmas: boolean;
}): SigmaSpacingKind | undefined {
  if (config.use_karras_sigmas) return "karras";
  if (config.use_exponential_sigmas) return "exponential";
  if (config.use_beta_sigmas) return "beta";
  return undefined;
}

/**
 * diffusers' `_sigma_to_t`: the fractional training step whose log-sigma matches, interpolating linearly
 * between the two neighbouring training steps.
 */
export function sigmaToT(sigma: number, logTrainingSigmas: Float32Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  let low = 0;
  for (let i = 0; i < logTrainingSigmas.length; i++)
    if (logSigma - (logTrainingSigmas[i] as number) >= 0) low = i;
  low = Math.min(low, logTrainingSigmas.length - 2);
  const lowLog = logTrainingSigmas[low] as number;
  const highLog = logTrainingSigmas[low + 1] as number;
  const w = Math.min(Math.max((lowLog - logSigma) / f32(lowLog - highLog), 0), 1);
  return (1 - w) * low + w * (low + 1);
}

export interface SigmaSpacing {
  readonly use_karras_sigmas: boolean;
  readonly use_exponential_sigmas: boolean;
  readonly use_beta_sigmas: boolean;
  readonly sigma_min?: number | null;
  readonly sigma_max?: number | null;
}

/**
 * Replaces interpolated sigmas by Karras, exponential or beta ones when configured (bounded by the config's
 * sigma_min/sigma_max, else by the interpolated ends) and maps them back to fractional float32 timesteps.
 */
export function respaceSigmas(
  sigmas: number[],
  timesteps: number[],
  logTrainingSigmas: Float32Array,
  n: number,
  spacing: SigmaSpacing,
): { sigmas: number[]; timesteps: number[] } {
  const kind = sigmaSpacingOf(spacing);
  if (!kind) return { sigmas, timesteps };
  const sigmaMin = spacing.sigma_min ?? (sigmas[sigmas.length - 1] as number);
  const sigmaMax = spacing.sigma_max ?? (sigmas[0] as number);
  const spaced = spacedSigmas(kind, sigmaMin, sigmaMax, n);
  return { sigmas: spaced, timesteps: spaced.map((s) => f32(sigmaToT(s, logTrainingSigmas))) };
}
