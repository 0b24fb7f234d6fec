import { predictionTypeOption, stepsOffsetOption, timestepSpacingOption } from "./common-options.js";
import { predictOriginal } from "./euler-scheduler.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import { interp } from "./numpy-numerics.js";
import type { StepOptions, StepResult } from "./scheduler.js";
import { type ConfigOf, type OptionSpecs, parseConfig } from "./scheduler-config.js";
import { SigmaSchedulerBase } from "./sigma-scheduler-base.js";
import { spacedFloatTimesteps } from "./sigma-schedules.js";
import { f32 } from "./torch-numerics.js";

export const eulerAncestralOptions = {
  ...noiseScheduleOptions({
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: "linear",
    schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
  }),
  prediction_type: predictionTypeOption(["epsilon", "v_prediction"]),
  timestep_spacing: timestepSpacingOption("linspace"),
  steps_offset: stepsOffsetOption,
} as const satisfies OptionSpecs;

export type EulerAncestralConfig = ConfigOf<typeof eulerAncestralOptions>;

/** diffusers' EulerAncestralDiscreteScheduler: an Euler step to sigma_down, then fresh noise of sigma_up. */
export class EulerAncestralScheduler extends SigmaSchedulerBase<EulerAncestralConfig> {
  readonly kind = "EulerAncestralDiscreteScheduler";

  constructor(raw: unknown) {
    const config = parseConfig(eulerAncestralOptions, raw);
    const alphas = alphasCumprod(config);
    if (config.rescale_betas_zero_snr) alphas[alphas.length - 1] = 2 ** -24;
    super(config, alphas);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    this.checkInferenceSteps(numInferenceSteps, config.num_train_timesteps);
    const timesteps = spacedFloatTimesteps(
      config.timestep_spacing,
      config.num_train_timesteps,
      numInferenceSteps,
      config.steps_offset,
    );
    const steps = Array.from(this.trainSigmas.keys());
    const sigmas = timesteps.map((t) => interp(t, steps, this.trainSigmas));
    this.resetSchedule(timesteps, Float32Array.from([...sigmas, 0]), numInferenceSteps);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.currentIndex(timestep);
    const sigma = this.sigmaAt(index);
    const predOriginal = predictOriginal(this.config.prediction_type, modelOutput, sample, sigma);
    const sigmaTo = this.sigmaAt(index + 1);
    const fromSq = f32(sigma * sigma);
    const toSq = f32(sigmaTo * sigmaTo);
    const sigmaUp = f32(Math.sqrt(f32(f32(toSq * f32(fromSq - toSq)) / fromSq)));
    const sigmaDown = f32(Math.sqrt(f32(toSq - f32(sigmaUp * sigmaUp))));
    const dt = f32(sigmaDown - sigma);
    // diffusers draws the noise on every step, the last included (where sigma_up is 0).
    const noise = this.noiseFor(options, sample.length);
    const prevSample = sample.map((x, i) => {
      const derivative = f32(f32(x - (predOriginal[i] as number)) / sigma);
      return f32(x + f32(derivative * dt)) + f32((noise[i] as number) * sigmaUp);
    });
    this.index = index + 1;
    return { prevSample, predOriginalSample: predOriginal };
  }
}
