import { predictionTypeOption, stepsOffsetOption, timestepSpacingOption } from "./common-options.js";
import { checkSigmaSchedule, predictOriginal, sigmaScheduleOptions } from "./euler-scheduler.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { SigmaSchedulerBase } from "./sigma-scheduler-base.js";
import { logSigmas, respaceSigmas, spacedFloatTimesteps } from "./sigma-schedules.js";
import { interpolatedSigmas } from "./solver-schedule.js";
import { f32 } from "./torch-numerics.js";

// diffusers' LMSDiscreteScheduler has no rescale_betas_zero_snr.
const { rescale_betas_zero_snr: _unsupported, ...lmsNoiseOptions } = noiseScheduleOptions({
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
});

export const lmsOptions = {
  ...lmsNoiseOptions,
  ...sigmaScheduleOptions,
  prediction_type: predictionTypeOption(["epsilon", "sample", "v_prediction"]),
  timestep_spacing: timestepSpacingOption("linspace"),
  steps_offset: stepsOffsetOption,
} as const satisfies OptionSpecs;

export type LmsConfig = ConfigOf<typeof lmsOptions>;

/** diffusers' `step(order=4)` default: the derivatives of up to four steps enter each update. */
const LMS_ORDER = 4;

/**
 * diffusers' LMSDiscreteScheduler (k-diffusion's `sample_lms`): a linear multistep method over the last four
 * derivatives, each weighted by the integral of its Lagrange basis polynomial over the step's sigma interval.
 */
export class LmsScheduler extends SigmaSchedulerBase<LmsConfig> {
  readonly kind = "LMSDiscreteScheduler";
  private derivatives: Float32Array[] = [];

  constructor(raw: unknown) {
    const config = parseConfig(lmsOptions, raw);
    checkSigmaSchedule(config);
    super(config, alphasCumprod({ ...config, rescale_betas_zero_snr: false }));
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    this.checkInferenceSteps(numInferenceSteps, config.num_train_timesteps);
    const spaced = spacedFloatTimesteps(
      config.timestep_spacing,
      config.num_train_timesteps,
      numInferenceSteps,
      config.steps_offset,
    );
    const interpolated = interpolatedSigmas(spaced, this.trainSigmas);
    const logTrain = logSigmas(this.trainSigmas);
    const { sigmas, timesteps } = respaceSigmas(interpolated, spaced, logTrain, numInferenceSteps, config);
    this.resetSchedule(timesteps, Float32Array.from([...sigmas, 0]), numInferenceSteps);
    this.derivatives = [];
  }

  step(
    modelOutput: Float32Array,
    timestep: number,
    sample: Float32Array,
    _options?: StepOptions,
  ): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.currentIndex(timestep);
    const sigma = this.sigmaAt(index);
    const predOriginal = predictOriginal(this.config.prediction_type, modelOutput, sample, sigma);
    this.derivatives.push(sample.map((x, i) => f32(x - (predOriginal[i] as number)) / sigma));
    if (this.derivatives.length > LMS_ORDER) this.derivatives.shift();
    const order = Math.min(index + 1, LMS_ORDER);
    const coefficients = Array.from({ length: order }, (_, j) => f32(this.lmsCoefficient(order, index, j)));
    // diffusers zips the coefficients with the derivatives it has: entered part-way, fewer than `order`.
    const newestFirst = [...this.derivatives].reverse();
    const terms = Math.min(order, newestFirst.length);
    const prevSample = sample.map((x, i) => {
      let sum = 0;
      for (let j = 0; j < terms; j++) {
        const term = f32((coefficients[j] as number) * ((newestFirst[j] as Float32Array)[i] as number));
        sum = j === 0 ? term : f32(sum + term);
      }
      return x + sum;
    });
    this.index = index + 1;
    return { prevSample, predOriginalSample: predOriginal };
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return { derivatives: this.derivatives };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const { derivatives } = memory;
    if (
      !Array.isArray(derivatives) ||
      derivatives.length > LMS_ORDER ||
      !derivatives.every((d) => d instanceof Float32Array)
    ) {
      throw new SchedulerInputError("state", `needs derivatives (at most ${LMS_ORDER} tensors)`);
    }
    this.derivatives = derivatives as Float32Array[];
  }

  /**
   * diffusers' `get_lms_coefficient`: the integral over [sigma_t, sigma_t+1] of the Lagrange basis polynomial
   * of derivative `current` among the last `order` sigmas. diffusers integrates with `scipy.integrate.quad`;
   * the integrand is a polynomial of degree < 4, which 4-point Gauss-Legendre integrates exactly.
   */
  private lmsCoefficient(order: number, t: number, current: number): number {
    const sigmas = this.requireSchedule();
    const at = (k: number) => sigmas[t - k] as number;
    const basis = (tau: number) => {
      let product = 1;
      for (let k = 0; k < order; k++) {
        if (k !== current) product *= (tau - at(k)) / (at(current) - at(k));
      }
      return product;
    };
    const from = at(0);
    const to = sigmas[t + 1] as number;
    const half = (to - from) / 2;
    const mid = (to + from) / 2;
    let integral = 0;
    for (const [node, weight] of GAUSS_LEGENDRE_4) integral += weight * basis(mid + half * node);
    return integral * half;
  }
}

/** Nodes and weights of 4-point Gauss-Legendre quadrature on [-1, 1]. */
const GAUSS_LEGENDRE_4: readonly (readonly [number, number])[] = (() => {
  const inner = Math.sqrt(3 / 7 - (2 / 7) * Math.sqrt(6 / 5));
  const outer = Math.sqrt(3 / 7 + (2 / 7) * Math.sqrt(6 / 5));
  const wInner = (18 + Math.sqrt(30)) / 36;
  const wOuter = (18 - Math.sqrt(30)) / 36;
  return [
    [-outer, wOuter],
    [-inner, wInner],
    [inner, wInner],
    [outer, wOuter],
  ];
})();
