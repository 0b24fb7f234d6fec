import { predictionTypeOption, stepsOffsetOption, timestepSpacingOption } from "./common-options.js";
import { checkSigmaSchedule, sigmaScheduleOptions } from "./euler-scheduler.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { sigmaSpacingOf } from "./sigma-schedules.js";
import { combine, dataPrediction, type NoiseLevel } from "./solver-math.js";
import { interpolatedSigmas, respacedSolverSigmas, solverTimesteps } from "./solver-schedule.js";
import { SolverSchedulerBase } from "./solver-scheduler-base.js";
import { thresholdingOptions, thresholdSample } from "./thresholding.js";
import { f32 } from "./torch-numerics.js";

// diffusers' DEISMultistepScheduler has no rescale_betas_zero_snr.
const { rescale_betas_zero_snr: _unsupported, ...deisNoiseOptions } = noiseScheduleOptions({
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
});

export const deisOptions = {
  ...deisNoiseOptions,
  solver_order: {
    type: "integer",
    default: 2,
    min: 1,
    max: 3,
    description: "Multistep order: 2 for guided sampling, 3 for unconditional.",
  },
  prediction_type: predictionTypeOption(["epsilon", "sample", "v_prediction"]),
  ...thresholdingOptions,
  algorithm_type: {
    type: "enum",
    values: ["deis"],
    default: "deis",
    aliases: { dpmsolver: "deis", "dpmsolver++": "deis" },
    description: "DEIS's exponential integrator (the only one diffusers implements).",
  },
  solver_type: {
    type: "enum",
    values: ["logrho"],
    default: "logrho",
    aliases: { midpoint: "logrho", heun: "logrho", bh1: "logrho", bh2: "logrho" },
    description: "Polynomial extrapolation in log(rho) (the only one diffusers implements).",
  },
  lower_order_final: {
    type: "boolean",
    default: true,
    description: "Use lower orders for the last steps when there are fewer than 15 steps.",
  },
  ...sigmaScheduleOptions,
  timestep_spacing: timestepSpacingOption("linspace"),
  steps_offset: stepsOffsetOption,
} as const satisfies OptionSpecs;

export type DeisConfig = ConfigOf<typeof deisOptions>;

/**
 * diffusers' DEISMultistepScheduler (diffusion exponential integrator sampler, arXiv:2204.13902): the
 * exponential integrator with the noise prediction extrapolated by a Lagrange polynomial in log(rho),
 * rho = sigma_t / alpha_t, over the last `solver_order` steps.
 */
export class DeisScheduler extends SolverSchedulerBase<DeisConfig> {
  readonly kind = "DEISMultistepScheduler";
  private modelOutputs: (Float32Array | null)[];
  private lowerOrderNums = 0;

  constructor(raw: unknown) {
    const config = parseConfig(deisOptions, raw);
    checkSigmaSchedule(config);
    super(config, alphasCumprod({ ...config, rescale_betas_zero_snr: false }));
    this.modelOutputs = new Array(config.solver_order).fill(null);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    const train = config.num_train_timesteps;
    this.checkInferenceSteps(numInferenceSteps, train);
    const n = numInferenceSteps;
    let timesteps = solverTimesteps(config.timestep_spacing, train, n, config.steps_offset);
    const spacing = sigmaSpacingOf(config);
    let sigmas: number[];
    let last: number;
    if (spacing) {
      ({ sigmas, timesteps } = respacedSolverSigmas(spacing, this.trainSigmas, n));
      last = sigmas[sigmas.length - 1] as number;
    } else {
      sigmas = interpolatedSigmas(timesteps, this.trainSigmas);
      last = this.trainSigmas[0] as number;
    }
    this.resetSchedule(timesteps, Float32Array.from([...sigmas, last]), timesteps.length);
    this.modelOutputs = new Array(config.solver_order).fill(null);
    this.lowerOrderNums = 0;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.startIndex(timestep);
    const { config } = this;
    const count = this.schedule.length;
    const lowerFinal = index === count - 1 && config.lower_order_final && count < 15;
    const lowerSecond = index === count - 2 && config.lower_order_final && count < 15;
    const level = this.levelAt(index);
    let x0 = dataPrediction(config.prediction_type, modelOutput, sample, level);
    if (config.thresholding) x0 = thresholdSample(x0, options?.batchSize ?? 1, config);
    // DEIS steps with the noise prediction implied by x0.
    const eps = sample.map((x, i) => f32(x - f32(level.alpha * (x0[i] as number))) / level.sigma);
    this.modelOutputs.shift();
    this.modelOutputs.push(eps);
    let prevSample: Float32Array;
    if (config.solver_order === 1 || this.lowerOrderNums < 1 || lowerFinal) {
      prevSample = this.firstOrderUpdate(eps, sample, index);
    } else if (config.solver_order === 2 || this.lowerOrderNums < 2 || lowerSecond) {
      prevSample = this.multistepUpdate(sample, index, 2);
    } else {
      prevSample = this.multistepUpdate(sample, index, 3);
    }
    if (this.lowerOrderNums < config.solver_order) this.lowerOrderNums++;
    this.index = index + 1;
    return { prevSample, predOriginalSample: x0 };
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return { modelOutputs: this.modelOutputs, lowerOrderNums: this.lowerOrderNums };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const outputs = memory.modelOutputs;
    const nums = memory.lowerOrderNums;
    if (!Array.isArray(outputs) || outputs.length !== this.config.solver_order || typeof nums !== "number") {
      throw new SchedulerInputError(
        "state",
        `needs modelOutputs (${this.config.solver_order}) and lowerOrderNums`,
      );
    }
    this.modelOutputs = outputs;
    this.lowerOrderNums = nums;
  }

  private firstOrderUpdate(eps: Float32Array, x: Float32Array, index: number): Float32Array {
    const t = this.levelAt(index + 1);
    const s = this.levelAt(index);
    const h = f32(t.lambda - s.lambda);
    return combine(x, f32(t.alpha / s.alpha), [eps, f32(-f32(t.sigma * f32(f32(Math.exp(h)) - 1)))]);
  }

  /**
   * diffusers' second and third order updates: x_t = alpha_t (x / alpha_s0 + sum_k c_k eps_k), each c_k the
   * integral in log(rho) of eps_k's Lagrange basis polynomial (the `ind_fn` closed forms), in float32.
   */
  private multistepUpdate(x: Float32Array, index: number, order: 2 | 3): Float32Array {
    const levels: NoiseLevel[] = [this.levelAt(index + 1)];
    for (let k = 0; k < order; k++) levels.push(this.levelAt(index - k));
    const [rhoT, ...rhos] = levels.map((l) => f32(l.sigma / l.alpha)) as [number, ...number[]];
    const outputs = this.modelOutputs.slice(-order).reverse() as Float32Array[];
    const log = (v: number) => f32(Math.log(v));
    const coefficients =
      order === 2
        ? (() => {
            const [s0, s1] = rhos as [number, number];
            const ind = (t: number, b: number, c: number) =>
              f32(f32(t * f32(f32(f32(-log(c)) + log(t)) - 1)) / f32(log(b) - log(c)));
            return [f32(ind(rhoT, s0, s1) - ind(s0, s0, s1)), f32(ind(rhoT, s1, s0) - ind(s0, s1, s0))];
          })()
        : (() => {
            const [s0, s1, s2] = rhos as [number, number, number];
            const ind = (t: number, b: number, c: number, d: number) => {
              const lt = log(t);
              const ld = log(d);
              let sum = f32(log(c) * f32(f32(ld - lt) + 1));
              sum = f32(sum - f32(ld * lt));
              sum = f32(sum + ld);
              sum = f32(sum + f32(lt * lt));
              sum = f32(sum - f32(2 * lt));
              const numerator = f32(t * f32(sum + 2));
              const denominator = f32(f32(log(b) - log(c)) * f32(log(b) - ld));
              return f32(numerator / denominator);
            };
            return [
              f32(ind(rhoT, s0, s1, s2) - ind(s0, s0, s1, s2)),
              f32(ind(rhoT, s1, s2, s0) - ind(s0, s1, s2, s0)),
              f32(ind(rhoT, s2, s0, s1) - ind(s0, s2, s0, s1)),
            ];
          })();
    const alphaT = (levels[0] as NoiseLevel).alpha;
    const alphaS0 = (levels[1] as NoiseLevel).alpha;
    return x.map((v, i) => {
      let inner = f32(v / alphaS0);
      for (let k = 0; k < order; k++) {
        inner = f32(inner + f32((coefficients[k] as number) * ((outputs[k] as Float32Array)[i] as number)));
      }
      return f32(alphaT * inner);
    });
  }
}
