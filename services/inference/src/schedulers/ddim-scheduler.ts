import {
  clipSampleOptions,
  predictionTypeOption,
  setAlphaToOneOption,
  stepsOffsetOption,
  timestepSpacingOption,
} from "./common-options.js";
import { addNoiseByAlpha, alphaProdAt, alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import { arange, linspace, roundHalfEven } from "./numpy-numerics.js";
import type { StepOptions, StepResult } from "./scheduler.js";
import { SchedulerBase } from "./scheduler-base.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { thresholdingOptions, thresholdSample } from "./thresholding.js";
import { f32 } from "./torch-numerics.js";

export const ddimOptions = {
  ...noiseScheduleOptions({
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: "linear",
    schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
  }),
  ...clipSampleOptions(true),
  set_alpha_to_one: setAlphaToOneOption,
  steps_offset: stepsOffsetOption,
  prediction_type: predictionTypeOption(["epsilon", "sample", "v_prediction"]),
  ...thresholdingOptions,
  timestep_spacing: timestepSpacingOption("leading"),
} as const satisfies OptionSpecs;

export type DdimConfig = ConfigOf<typeof ddimOptions>;

/** diffusers' DDIMScheduler (arXiv:2010.02502): deterministic at eta 0, adds fresh noise for eta > 0. */
export class DdimScheduler extends SchedulerBase<DdimConfig> {
  readonly kind = "DDIMScheduler";
  private readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;

  constructor(raw: unknown) {
    super(parseConfig(ddimOptions, raw));
    this.alphasCumprod = alphasCumprod(this.config);
    this.finalAlphaCumprod = this.config.set_alpha_to_one ? 1 : (this.alphasCumprod[0] as number);
  }

  get initNoiseSigma(): number {
    return 1;
  }

  setTimesteps(numInferenceSteps: number): void {
    const train = this.config.num_train_timesteps;
    this.checkInferenceSteps(numInferenceSteps, train);
    this.resetSchedule(spacedTimesteps(this.config, numInferenceSteps), null, numInferenceSteps);
  }

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult {
    this.checkStepInputs(modelOutput, sample);
    // DDIM derives the previous timestep arithmetically, so (as in diffusers) any training step is accepted;
    // the index is only kept for progress and state.
    const index = this.index ?? this.begin ?? Math.max(0, this.schedule.indexOf(timestep));
    const { config } = this;
    const prev = timestep - Math.floor(config.num_train_timesteps / (this.inferenceSteps as number));
    const alphaProd = this.alphaAt(timestep);
    const alphaProdPrev = prev >= 0 ? this.alphaAt(prev) : this.finalAlphaCumprod;
    const betaProd = f32(1 - alphaProd);
    const sqrtAlpha = f32(Math.sqrt(alphaProd));
    const sqrtBeta = f32(Math.sqrt(betaProd));

    const n = sample.length;
    let predOriginal: Float32Array = new Float32Array(n);
    const predEpsilon = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const x = sample[i] as number;
      const m = modelOutput[i] as number;
      if (config.prediction_type === "epsilon") {
        predOriginal[i] = f32(x - f32(sqrtBeta * m)) / sqrtAlpha;
        predEpsilon[i] = m;
      } else if (config.prediction_type === "sample") {
        predOriginal[i] = m;
        predEpsilon[i] = f32(x - f32(sqrtAlpha * m)) / sqrtBeta;
      } else {
        predOriginal[i] = f32(sqrtAlpha * x) - f32(sqrtBeta * m);
        predEpsilon[i] = f32(sqrtAlpha * m) + f32(sqrtBeta * x);
      }
    }
    if (config.thresholding) {
      predOriginal = thresholdSample(predOriginal, options?.batchSize ?? 1, config);
    } else if (config.clip_sample) {
      const range = f32(config.clip_sample_range);
      predOriginal = predOriginal.map((v) => Math.min(Math.max(v, -range), range));
    }

    const eta = options?.eta ?? 0;
    if (!Number.isFinite(eta) || eta < 0) throw new SchedulerInputError("eta", `must be >= 0, got ${eta}`);
    const betaProdPrev = f32(1 - alphaProdPrev);
    const variance = f32(f32(betaProdPrev / betaProd) * f32(1 - f32(alphaProd / alphaProdPrev)));
    const stdDev = f32(f32(eta) * f32(Math.sqrt(variance)));
    const directionScale = f32(Math.sqrt(f32(betaProdPrev - f32(stdDev * stdDev))));
    const sqrtAlphaPrev = f32(Math.sqrt(alphaProdPrev));
    const prevSample = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      prevSample[i] =
        f32(sqrtAlphaPrev * (predOriginal[i] as number)) + f32(directionScale * (predEpsilon[i] as number));
    }
    if (eta > 0) {
      const noise = this.noiseFor(options, n);
      for (let i = 0; i < n; i++)
        prevSample[i] = (prevSample[i] as number) + f32(stdDev * (noise[i] as number));
    }
    this.index = index + 1;
    return { prevSample, predOriginalSample: predOriginal };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseByAlpha(original, noise, this.alphaAt(timestep));
  }

  private alphaAt(timestep: number): number {
    return alphaProdAt(this.alphasCumprod, timestep);
  }
}

/** DDIM's integer timesteps for each `timestep_spacing`. */
function spacedTimesteps(config: DdimConfig, n: number): number[] {
  const train = config.num_train_timesteps;
  switch (config.timestep_spacing) {
    case "linspace":
      return linspace(0, train - 1, n)
        .map(roundHalfEven)
        .reverse();
    case "leading": {
      const ratio = Math.floor(train / n);
      return Array.from({ length: n }, (_, i) => i * ratio + config.steps_offset).reverse();
    }
    case "trailing":
      return arange(train, 0, -train / n).map((t) => roundHalfEven(t) - 1);
  }
}
