import type { TimestepSpacing } from "./common-options.js";
import { arange, interp, linspace, roundHalfEven } from "./numpy-numerics.js";
import { logSigmas, type SigmaSpacingKind, sigmaToT, spacedSigmas } from "./sigma-schedules.js";

/**
 * Integer timesteps as the DPM-Solver family (DPM-Solver multistep and single-step, DEIS, UniPC) spaces
 * them: n + 1 points with the last dropped, up to `lastTimestep` (below num_train_timesteps when low log-SNRs
 * are clipped).
 */
export function solverTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  n: number,
  stepsOffset: number,
  lastTimestep = numTrainTimesteps,
): number[] {
  switch (spacing) {
    case "linspace":
      return linspace(0, lastTimestep - 1, n + 1)
        .map(roundHalfEven)
        .reverse()
        .slice(0, -1);
    case "leading": {
      const ratio = Math.floor(lastTimestep / (n + 1));
      return Array.from({ length: n + 1 }, (_, i) => i * ratio + stepsOffset)
        .reverse()
        .slice(0, -1);
    }
    case "trailing":
      return arange(lastTimestep, 0, -numTrainTimesteps / n).map((t) => roundHalfEven(t) - 1);
  }
}

/** The training sigmas interpolated at (integer or fractional) timesteps, in float64. */
export function interpolatedSigmas(timesteps: readonly number[], trainSigmas: Float32Array): number[] {
  const steps = Array.from(trainSigmas.keys());
  return timesteps.map((t) => interp(t, steps, trainSigmas));
}

/**
 * Karras, exponential or beta sigmas between the training sigmas' ends (or the config's sigma_min /
 * sigma_max), with the timesteps they map back to. diffusers rounds the Karras timesteps and leaves the
 * others fractional; their cast to int64 then truncates them (`integerTimesteps`).
 */
export function respacedSolverSigmas(
  kind: SigmaSpacingKind,
  trainSigmas: Float32Array,
  n: number,
  options: { sigmaMin?: number | null; sigmaMax?: number | null; roundKarras?: boolean } = {},
): { sigmas: number[]; timesteps: number[] } {
  const logTrain = logSigmas(trainSigmas);
  const sigmaMin = options.sigmaMin ?? (trainSigmas[0] as number);
  const sigmaMax = options.sigmaMax ?? (trainSigmas[trainSigmas.length - 1] as number);
  const sigmas = spacedSigmas(kind, sigmaMin, sigmaMax, n);
  const exact = sigmas.map((s) => sigmaToT(s, logTrain));
  const rounded = kind === "karras" && (options.roundKarras ?? true);
  return { sigmas, timesteps: exact.map(rounded ? roundHalfEven : Math.trunc) };
}
