import { describe, expect, it } from "vitest";
import { betaQuantile } from "../../src/schedulers/beta-quantile.js";
import { DpmSolverMultistepScheduler, EulerScheduler } from "../../src/schedulers/index.js";
import { dummySampleDeter, fullLoop, meanAbs, scaled, solverLoop, sumAbs } from "./diffusers-fixtures.js";

// diffusers' own beta-sigma tests (test_beta_sigmas) only compare a scheduler with its saved copy, so the
// expected values here were computed independently: scipy 1.10.1's scipy.stats.beta.ppf, and diffusers'
// schedulers (commit 58eb52c) run on Debian's torch 1.13.1 (CPU) with the fixtures of test_schedulers.py.
describe("beta sigmas (arXiv:2407.12173)", () => {
  it("betaQuantile matches scipy.stats.beta.ppf(q, 0.6, 0.6)", () => {
    const scipy: [number, number][] = [
      [0.9, 0.9604155944112192],
      [0.75, 0.824319621347305],
      [0.5, 0.5000000000000001],
      [1 / 3, 0.2754132907776234],
      [0.1, 0.03958440558878085],
      [0.01, 0.0008612388215429059],
      [1e-6, 1.8558824624053043e-10],
    ];
    for (const [q, expected] of scipy) {
      expect(Math.abs(betaQuantile(q, 0.6, 0.6) - expected)).toBeLessThan(1e-14 + 1e-12 * expected);
    }
    expect(betaQuantile(0, 0.6, 0.6)).toBe(0);
    expect(betaQuantile(1, 0.6, 0.6)).toBe(1);
    expect(betaQuantile(0.2, 2, 5)).toBeCloseTo(0.1398806882699578, 14);
  });

  it("Euler (num_train_timesteps 1100, linear betas): diffusers' sigmas and timesteps, loop sum 0.2997", () => {
    const scheduler = new EulerScheduler({
      num_train_timesteps: 1100,
      beta_start: 0.0001,
      beta_end: 0.02,
      beta_schedule: "linear",
      use_beta_sigmas: true,
    });
    scheduler.setTimesteps(10);
    const sigmas = [
      261.0555725097656, 248.76246643066406, 223.04705810546875, 189.16015625, 150.58767700195312,
      110.47789764404297, 71.9054183959961, 38.018524169921875, 12.303112030029297, 0.010001329705119133, 0,
    ];
    const timesteps = [
      1099, 1094.2166748046875, 1083.3177490234375, 1066.6461181640625, 1043.1334228515625,
      1010.3206176757812, 962.9721069335938, 888.0797729492188, 737.4107055664062, 0,
    ];
    Array.from(scheduler.sigmas ?? []).forEach((s, i) => {
      expect(Math.abs(s - (sigmas[i] as number))).toBeLessThanOrEqual(1e-6 * (sigmas[i] as number));
    });
    scheduler.timesteps.forEach((t, i) => {
      expect(Math.abs(t - (timesteps[i] as number))).toBeLessThan(1e-3);
    });
    const sample = fullLoop(scheduler, scaled(dummySampleDeter(), scheduler.initNoiseSigma));
    expect(Math.abs(sumAbs(sample) - 0.2997145652770996)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.0003902533499058336)).toBeLessThan(1e-3);
  });

  // The first beta sigma is sigma_max itself; its timestep is 999 under NumPy 1.x's value-based casting (the
  // float32 log-sigma difference rounds w to 1) and 998 under NumPy 2 (NEP 50 keeps it in float64, w just
  // below 1, truncated). This follows NumPy 2; the loop's result is the same to 1e-6 either way.
  it("DPM++ 2M: diffusers' timesteps [998, 994, …, 629, 0] (NumPy 2), loop sum 64.9217", () => {
    const scheduler = new DpmSolverMultistepScheduler({
      use_beta_sigmas: true,
      final_sigmas_type: "sigma_min",
      lower_order_final: false,
    });
    scheduler.setTimesteps(10);
    expect(scheduler.timesteps).toEqual([998, 994, 983, 966, 942, 909, 862, 785, 629, 0]);
    const sample = solverLoop(scheduler, dummySampleDeter());
    expect(Math.abs(sumAbs(sample) - 64.92171478271484)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.08453348278999329)).toBeLessThan(1e-3);
  });
});
