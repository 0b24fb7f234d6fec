import {
  clipSampleOptions,
  predictionTypeOption,
  stepsOffsetOption,
  timestepSpacingOption,
} from "./common-options.js";
import { checkSigmaSchedule, predictOriginal, sigmaScheduleOptions } from "./euler-scheduler.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import { interp } from "./numpy-numerics.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { SigmaSchedulerBase } from "./sigma-scheduler-base.js";
import { logSigmas, respaceSigmas, spacedFloatTimesteps } from "./sigma-schedules.js";
import { f32 } from "./torch-numerics.js";

// diffusers' HeunDiscreteScheduler has no rescale_betas_zero_snr.
const { rescale_betas_zero_snr: _unsupported, ...heunNoiseOptions } = noiseScheduleOptions({
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "linear",
  schedules: ["linear", "scaled_linear", "squaredcos_cap_v2", "exp"],
});

export const heunOptions = {
  ...heunNoiseOptions,
  prediction_type: predictionTypeOption(["epsilon", "v_prediction", "sample"]),
  ...sigmaScheduleOptions,
  ...clipSampleOptions(false),
  timestep_spacing: timestepSpacingOption("linspace"),
  steps_offset: stepsOffsetOption,
} as const satisfies OptionSpecs;

export type HeunConfig = ConfigOf<typeof heunOptions>;

/**
 * diffusers' HeunDiscreteScheduler (Karras et al. 2022, algorithm 1 without churn). Every timestep after the
 * first appears twice: the first `step` of a pair is an Euler predictor, the second the Heun corrector that
 * averages both derivatives.
 */
export class HeunScheduler extends SigmaSchedulerBase<HeunConfig> {
  readonly kind = "HeunDiscreteScheduler";
  override readonly order = 2;
  private prevDerivative: Float32Array | null = null;
  private dt: number | null = null;
  private firstOrderSample: Float32Array | null = null;

  constructor(raw: unknown) {
    const config = parseConfig(heunOptions, raw);
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
    const steps = Array.from(this.trainSigmas.keys());
    const interpolated = spaced.map((t) => interp(t, steps, this.trainSigmas));
    const logTrain = logSigmas(this.trainSigmas);
    const { sigmas, timesteps } = respaceSigmas(interpolated, spaced, logTrain, numInferenceSteps, config);
    // [s0, s1, s1, ..., s(n-1), s(n-1), 0] and [t0, t1, t1, ..., t(n-1), t(n-1)].
    const sigmaSchedule = Float32Array.from([
      sigmas[0] as number,
      ...sigmas.slice(1).flatMap((s) => [s, s]),
      0,
    ]);
    const repeated = [timesteps[0] as number, ...timesteps.slice(1).flatMap((t) => [t, t])];
    this.resetSchedule(repeated, sigmaSchedule, numInferenceSteps);
    this.prevDerivative = null;
    this.dt = null;
    this.firstOrderSample = null;
  }

  step(
    modelOutput: Float32Array,
    timestep: number,
    sample: Float32Array,
    _options?: StepOptions,
  ): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.currentIndex(timestep);
    const firstOrder = this.dt === null;
    const sigma = this.sigmaAt(firstOrder ? index : index - 1);
    const sigmaNext = this.sigmaAt(firstOrder ? index + 1 : index);
    let predOriginal = predictOriginal(
      this.config.prediction_type,
      modelOutput,
      sample,
      firstOrder ? sigma : sigmaNext,
    );
    if (this.config.clip_sample) {
      const range = f32(this.config.clip_sample_range);
      predOriginal = predOriginal.map((v) => Math.min(Math.max(v, -range), range));
    }
    let prevSample: Float32Array;
    if (firstOrder) {
      const derivative = sample.map((x, i) => f32(x - (predOriginal[i] as number)) / sigma);
      const dt = f32(sigmaNext - sigma);
      this.prevDerivative = derivative;
      this.dt = dt;
      this.firstOrderSample = sample;
      prevSample = sample.map((x, i) => x + f32((derivative[i] as number) * dt));
    } else {
      const previous = this.prevDerivative as Float32Array;
      const dt = this.dt as number;
      const start = this.firstOrderSample as Float32Array;
      prevSample = start.map((x, i) => {
        const corrector = f32(f32((sample[i] as number) - (predOriginal[i] as number)) / sigmaNext);
        const derivative = f32(f32((previous[i] as number) + corrector) / 2);
        return x + f32(derivative * dt);
      });
      this.prevDerivative = null;
      this.dt = null;
      this.firstOrderSample = null;
    }
    this.index = index + 1;
    return { prevSample, predOriginalSample: predOriginal };
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return { prevDerivative: this.prevDerivative, dt: this.dt, sample: this.firstOrderSample };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const { prevDerivative, dt, sample } = memory;
    const tensorOrNull = (v: SolverMemoryValue | undefined) => v === null || v instanceof Float32Array;
    if (!tensorOrNull(prevDerivative) || !tensorOrNull(sample) || !(dt === null || typeof dt === "number")) {
      throw new SchedulerInputError("state", "needs prevDerivative, dt and sample (each possibly null)");
    }
    this.prevDerivative = prevDerivative as Float32Array | null;
    this.dt = dt;
    this.firstOrderSample = sample as Float32Array | null;
  }
}
