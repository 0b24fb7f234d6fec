import {
  clipSampleOptions,
  predictionTypeOption,
  setAlphaToOneOption,
  stepsOffsetOption,
  timestepSpacingOption,
} from "./common-options.js";
import { addNoiseByAlpha, alphaProdAt, alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import { linspace } from "./numpy-numerics.js";
import type { StepOptions, StepResult } from "./scheduler.js";
import { SchedulerBase } from "./scheduler-base.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { thresholdingOptions, thresholdSample } from "./thresholding.js";
import { f32 } from "./torch-numerics.js";

export const lcmOptions = {
  ...noiseScheduleOptions({
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
  }),
  original_inference_steps: {
    type: "integer",
    default: 50,
    min: 1,
    description: "Length of the distillation schedule that inference timesteps are picked from.",
  },
  ...clipSampleOptions(false),
  set_alpha_to_one: setAlphaToOneOption,
  steps_offset: stepsOffsetOption,
  prediction_type: predictionTypeOption(["epsilon", "sample", "v_prediction"]),
  ...thresholdingOptions,
  timestep_spacing: timestepSpacingOption("leading"),
  timestep_scaling: {
    type: "number",
    default: 10.0,
    min: 0,
    description: "Factor on the timestep in the consistency boundary conditions c_skip and c_out.",
  },
} as const satisfies OptionSpecs;

export type LcmConfig = ConfigOf<typeof lcmOptions>;

/** The consistency-model boundary conditions with sigma_data = 0.5, in float32. */
const SIGMA_DATA_SQUARED = 0.25;

/** diffusers' LCMScheduler (latent consistency models, arXiv:2310.04378): denoise, then re-noise to the next step. */
export class LcmScheduler extends SchedulerBase<LcmConfig> {
  readonly kind = "LCMScheduler";
  private readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;

  constructor(raw: unknown) {
    const config = parseConfig(lcmOptions, raw);
    if (config.original_inference_steps > config.num_train_timesteps) {
      throw new SchedulerInputError(
        "original_inference_steps",
        `must be at most num_train_timesteps (${config.num_train_timesteps}), got ${config.original_inference_steps}`,
      );
    }
    super(config);
    this.alphasCumprod = alphasCumprod(config);
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : (this.alphasCumprod[0] as number);
  }

  get initNoiseSigma(): number {
    return 1;
  }

  /** Evenly spaced picks from the distillation schedule [k - 1, 2k - 1, ..., original_steps * k - 1]. */
  setTimesteps(numInferenceSteps: number): void {
    const original = this.config.original_inference_steps;
    this.checkInferenceSteps(numInferenceSteps, Math.min(original, this.config.num_train_timesteps));
    const k = Math.floor(this.config.num_train_timesteps / original);
    const origin = Array.from({ length: original }, (_, i) => (original - i) * k - 1);
    const picks = linspace(0, origin.length, numInferenceSteps, false).map(Math.floor);
    this.resetSchedule(
      picks.map((i) => origin[i] as number),
      null,
      numInferenceSteps,
    );
  }

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.currentIndex(timestep);
    const { config } = this;
    const prevTimestep = this.schedule[index + 1] ?? timestep;
    const alphaProd = alphaProdAt(this.alphasCumprod, timestep);
    const alphaProdPrev =
      prevTimestep >= 0 ? alphaProdAt(this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const sqrtAlpha = f32(Math.sqrt(alphaProd));
    const sqrtBeta = f32(Math.sqrt(f32(1 - alphaProd)));

    const scaled = f32(f32(timestep) * f32(config.timestep_scaling));
    const scaledSq = f32(f32(scaled * scaled) + SIGMA_DATA_SQUARED);
    const cSkip = f32(SIGMA_DATA_SQUARED / scaledSq);
    const cOut = f32(scaled / f32(Math.sqrt(scaledSq)));

    let predOriginal: Float32Array;
    if (config.prediction_type === "epsilon") {
      predOriginal = sample.map((x, i) => f32(x - f32(sqrtBeta * (modelOutput[i] as number))) / sqrtAlpha);
    } else if (config.prediction_type === "sample") {
      predOriginal = Float32Array.from(modelOutput);
    } else {
      predOriginal = sample.map((x, i) => f32(sqrtAlpha * x) - f32(sqrtBeta * (modelOutput[i] as number)));
    }
    if (config.thresholding) {
      predOriginal = thresholdSample(predOriginal, options?.batchSize ?? 1, config);
    } else if (config.clip_sample) {
      const range = f32(config.clip_sample_range);
      predOriginal = predOriginal.map((v) => Math.min(Math.max(v, -range), range));
    }
    const denoised = sample.map((x, i) => f32(cOut * (predOriginal[i] as number)) + f32(cSkip * x));

    // No noise after the final step, which also makes one-step sampling deterministic.
    let prevSample = denoised;
    if (index !== (this.inferenceSteps as number) - 1) {
      const noise = this.noiseFor(options, sample.length);
      const a = f32(Math.sqrt(alphaProdPrev));
      const b = f32(Math.sqrt(f32(1 - alphaProdPrev)));
      prevSample = denoised.map((d, i) => f32(a * d) + f32(b * (noise[i] as number)));
    }
    this.index = index + 1;
    return { prevSample, predOriginalSample: denoised };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseByAlpha(original, noise, alphaProdAt(this.alphasCumprod, timestep));
  }
}
