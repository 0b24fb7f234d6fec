import { predictionTypeOption, stepsOffsetOption, timestepSpacingOption } from "./common-options.js";
import { checkSigmaSchedule, sigmaScheduleOptions } from "./euler-scheduler.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import { roundHalfEven } from "./numpy-numerics.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { SigmaSchedulerBase } from "./sigma-scheduler-base.js";
import {
  logSigmas,
  respaceSigmas,
  sigmaSpacingOf,
  sigmaToT,
  spacedFloatTimesteps,
} from "./sigma-schedules.js";
import { interpolatedSigmas } from "./solver-schedule.js";
import { f32, lerpF32 } from "./torch-numerics.js";

// diffusers' KDPM2 schedulers have no rescale_betas_zero_snr.
const { rescale_betas_zero_snr: _unsupported, ...kdpm2NoiseOptions } = noiseScheduleOptions({
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "linear",
  schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
});

export const kdpm2Options = {
  ...kdpm2NoiseOptions,
  ...sigmaScheduleOptions,
  prediction_type: predictionTypeOption(["epsilon", "v_prediction"]),
  timestep_spacing: timestepSpacingOption("linspace"),
  steps_offset: stepsOffsetOption,
} as const satisfies OptionSpecs;

export type Kdpm2Config = ConfigOf<typeof kdpm2Options>;

/** One inference schedule of the KDPM2 samplers before interleaving: n + 1 float32 sigmas, the last 0. */
export interface Kdpm2Base {
  readonly sigmas: Float32Array;
  readonly timesteps: number[];
  readonly logTrain: Float32Array;
  /** Whether the timesteps are float64 (respaced sigmas) rather than float32 (spaced steps). */
  readonly float64Timesteps: boolean;
}

/** The sigmas and timesteps both KDPM2 schedulers interleave their midpoints into. */
export function kdpm2BaseSchedule(config: Kdpm2Config, trainSigmas: Float32Array, n: number): Kdpm2Base {
  const spaced = spacedFloatTimesteps(
    config.timestep_spacing,
    config.num_train_timesteps,
    n,
    config.steps_offset,
  );
  const logTrain = logSigmas(trainSigmas);
  const interpolated = interpolatedSigmas(spaced, trainSigmas);
  const respaced = respaceSigmas(interpolated, spaced, logTrain, n, config);
  const spacing = sigmaSpacingOf(config);
  // diffusers rounds Karras timesteps and keeps every respaced schedule's timesteps in float64.
  const timesteps = spacing
    ? respaced.sigmas.map((s) => {
        const exact = sigmaToT(s, logTrain);
        return spacing === "karras" ? roundHalfEven(exact) : exact;
      })
    : spaced;
  return {
    sigmas: Float32Array.from([...respaced.sigmas, 0]),
    timesteps,
    logTrain,
    float64Timesteps: spacing !== undefined,
  };
}

/** exp(lerp(log a, log b, 0.5)) elementwise in float32, as `a.log().lerp(b.log(), 0.5).exp()`. */
export function logMidpoints(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => f32(Math.exp(lerpF32(f32(Math.log(x)), f32(Math.log(b[i] as number)), 0.5))));
}

/** `cat([x[:1], x[1:].repeat_interleave(2), x[-1:]])`: one entry per timestep of the interleaved schedule. */
export function interleave(x: Float32Array): Float32Array {
  const out = [x[0] as number];
  for (let i = 1; i < x.length; i++) out.push(x[i] as number, x[i] as number);
  out.push(x[x.length - 1] as number);
  return Float32Array.from(out);
}

/**
 * `[t0, m1, t1, m2, t2, ...]`: the step timesteps with the midpoints' timesteps between them, cast to the
 * timesteps' dtype.
 */
export function interleavedTimesteps(base: Kdpm2Base, midpointSigmas: Float32Array): number[] {
  const cast = base.float64Timesteps ? (t: number) => t : f32;
  const mid = Array.from(midpointSigmas, (s) => cast(sigmaToT(s, base.logTrain)));
  const steps = base.timesteps.map(cast);
  const out = [steps[0] as number];
  for (let i = 1; i < steps.length; i++) out.push(mid[i - 1] as number, steps[i] as number);
  return out;
}

/**
 * diffusers' KDPM2DiscreteScheduler (k-diffusion's `sample_dpm_2`): each step evaluates the model at the
 * sample, takes an Euler step to the log-midpoint sigma, evaluates there and steps the whole interval with that
 * derivative. The timesteps interleave the midpoints, so each step after the first is two entries.
 */
export class Kdpm2Scheduler extends SigmaSchedulerBase<Kdpm2Config> {
  readonly kind = "KDPM2DiscreteScheduler";
  override readonly order = 2;
  private sigmasInterpol: Float32Array = new Float32Array(0);
  private firstOrderSample: Float32Array | null = null;

  constructor(raw: unknown) {
    const config = parseConfig(kdpm2Options, raw);
    checkSigmaSchedule(config);
    super(config, alphasCumprod({ ...config, rescale_betas_zero_snr: false }));
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    this.checkInferenceSteps(numInferenceSteps, config.num_train_timesteps);
    const base = kdpm2BaseSchedule(config, this.trainSigmas, numInferenceSteps);
    const rolled = Float32Array.from([
      base.sigmas[base.sigmas.length - 1] as number,
      ...base.sigmas.slice(0, -1),
    ]);
    const interpol = logMidpoints(base.sigmas, rolled);
    const timesteps = interleavedTimesteps(base, interpol.slice(1, -1));
    this.resetSchedule(timesteps, interleave(base.sigmas), numInferenceSteps);
    this.sigmasInterpol = interleave(interpol);
    this.firstOrderSample = null;
  }

  override scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const index = this.currentIndex(timestep);
    const sigma =
      this.firstOrderSample === null ? this.sigmaAt(index) : (this.sigmasInterpol[index] as number);
    const scale = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
    return sample.map((x) => x / scale);
  }

  step(
    modelOutput: Float32Array,
    timestep: number,
    sample: Float32Array,
    _options?: StepOptions,
  ): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.currentIndex(timestep);
    const first = this.firstOrderSample === null;
    const sigma = this.sigmaAt(first ? index : index - 1);
    const sigmaInterpol = this.sigmasInterpol[first ? index + 1 : index] as number;
    const sigmaNext = this.sigmaAt(first ? index + 1 : index);
    const sigmaInput = first ? sigma : sigmaInterpol;
    const predOriginal = kdpm2PredictOriginal(this.config.prediction_type, modelOutput, sample, sigmaInput);
    const derivative = sample.map((x, i) => f32(x - (predOriginal[i] as number)) / sigmaInput);
    let start = sample;
    let dt: number;
    if (first) {
      dt = f32(sigmaInterpol - sigma);
      this.firstOrderSample = sample;
    } else {
      dt = f32(sigmaNext - sigma);
      start = this.firstOrderSample as Float32Array;
      this.firstOrderSample = null;
    }
    this.index = index + 1;
    const prevSample = start.map((x, i) => x + f32((derivative[i] as number) * dt));
    return { prevSample, predOriginalSample: predOriginal };
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return { sigmasInterpol: this.sigmasInterpol, sample: this.firstOrderSample };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const { sigmasInterpol, sample } = memory;
    if (!(sigmasInterpol instanceof Float32Array) || !(sample === null || sample instanceof Float32Array)) {
      throw new SchedulerInputError("state", "needs sigmasInterpol and sample (possibly null)");
    }
    this.sigmasInterpol = sigmasInterpol;
    this.firstOrderSample = sample;
  }
}

/** x0 at the sigma the model was evaluated at; KDPM2 has no "sample" prediction. */
export function kdpm2PredictOriginal(
  predictionType: "epsilon" | "v_prediction",
  modelOutput: Float32Array,
  sample: Float32Array,
  sigma: number,
): Float32Array {
  if (predictionType === "epsilon") return sample.map((x, i) => x - f32(sigma * (modelOutput[i] as number)));
  const variance = f32(f32(sigma * sigma) + 1);
  const cOut = f32(-sigma / f32(Math.sqrt(variance)));
  return sample.map((x, i) => f32((modelOutput[i] as number) * cOut) + f32(x / variance));
}
