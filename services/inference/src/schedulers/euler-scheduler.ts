import { predictionTypeOption, stepsOffsetOption, timestepSpacingOption } from "./common-options.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import { interp } from "./numpy-numerics.js";
import type { StepOptions, StepResult } from "./scheduler.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { SigmaSchedulerBase } from "./sigma-scheduler-base.js";
import { logSigmas, respaceSigmas, spacedFloatTimesteps } from "./sigma-schedules.js";
import { f32, linspaceF32 } from "./torch-numerics.js";

export const sigmaScheduleOptions = {
  use_karras_sigmas: {
    type: "boolean",
    default: false,
    description: "Space sigmas as Karras et al. (2022) do (rho = 7).",
  },
  use_exponential_sigmas: {
    type: "boolean",
    default: false,
    description: "Space sigmas evenly in log sigma.",
  },
  use_beta_sigmas: {
    type: "boolean",
    default: false,
    description: "Space sigmas by a Beta(0.6, 0.6) quantile (arXiv:2407.12173).",
  },
} as const satisfies OptionSpecs;

export const eulerOptions = {
  ...noiseScheduleOptions({
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: "linear",
    schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
  }),
  prediction_type: {
    ...predictionTypeOption(["epsilon", "sample", "v_prediction"]),
    aliases: { original_sample: "sample" },
  },
  interpolation_type: {
    type: "enum",
    values: ["linear", "log_linear"],
    default: "linear",
    description: "How inference sigmas are taken from the training sigmas.",
  },
  ...sigmaScheduleOptions,
  sigma_min: {
    type: "number?",
    default: null,
    min: 0,
    description: "Lowest sigma of Karras/exponential sigmas.",
  },
  sigma_max: {
    type: "number?",
    default: null,
    min: 0,
    description: "Highest sigma of Karras/exponential sigmas.",
  },
  timestep_spacing: timestepSpacingOption("linspace"),
  timestep_type: {
    type: "enum",
    values: ["discrete", "continuous"],
    default: "discrete",
    description: "continuous: the model takes 0.25 * log(sigma) as its timestep (v-prediction EDM models).",
  },
  steps_offset: stepsOffsetOption,
  final_sigmas_type: {
    type: "enum",
    values: ["zero", "sigma_min"],
    default: "zero",
    description: "The sigma after the last step: 0, or the smallest training sigma.",
  },
} as const satisfies OptionSpecs;

export type EulerConfig = ConfigOf<typeof eulerOptions>;

/** diffusers' EulerDiscreteScheduler (Karras et al. 2022, algorithm 2, without churn). */
export class EulerScheduler extends SigmaSchedulerBase<EulerConfig> {
  readonly kind = "EulerDiscreteScheduler";

  constructor(raw: unknown) {
    const config = parseConfig(eulerOptions, raw);
    checkSigmaSchedule(config);
    const alphas = alphasCumprod(config);
    // diffusers keeps the first sigma finite under zero terminal SNR: "FP16 smallest positive subnormal".
    if (config.rescale_betas_zero_snr) alphas[alphas.length - 1] = 2 ** -24;
    super(config, alphas);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    this.checkInferenceSteps(numInferenceSteps, config.num_train_timesteps);
    let timesteps = spacedFloatTimesteps(
      config.timestep_spacing,
      config.num_train_timesteps,
      numInferenceSteps,
      config.steps_offset,
    );
    const train = this.trainSigmas;
    const logTrain = logSigmas(train);
    const steps = Array.from(train.keys());
    let sigmas: number[] =
      config.interpolation_type === "linear"
        ? timesteps.map((t) => interp(t, steps, train))
        : Array.from(
            linspaceF32(logTrain[train.length - 1] as number, logTrain[0] as number, numInferenceSteps + 1),
            (v) => f32(Math.exp(v)),
          );
    ({ sigmas, timesteps } = respaceSigmas(sigmas, timesteps, logTrain, numInferenceSteps, config));
    const last = config.final_sigmas_type === "sigma_min" ? this.sigmaMinOfTraining() : 0;
    const sigmaSchedule = Float32Array.from([...sigmas, last]);
    if (config.timestep_type === "continuous" && config.prediction_type === "v_prediction") {
      timesteps = Array.from(sigmaSchedule.subarray(0, -1), (s) => f32(0.25 * f32(Math.log(s))));
    }
    this.resetSchedule(timesteps, sigmaSchedule, numInferenceSteps);
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
    const dt = f32(this.sigmaAt(index + 1) - sigma);
    const prevSample = sample.map((x, i) => x + f32(f32(f32(x - (predOriginal[i] as number)) / sigma) * dt));
    this.index = index + 1;
    return { prevSample, predOriginalSample: predOriginal };
  }
}

/** The sigma-spacing switches are exclusive, as diffusers checks in every constructor that has them. */
export function checkSigmaSchedule(config: {
  readonly use_karras_sigmas: boolean;
  readonly use_exponential_sigmas: boolean;
  readonly use_beta_sigmas: boolean;
}): void {
  const on = (["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"] as const).filter(
    (k) => config[k],
  );
  if (on.length > 1) {
    throw new SchedulerInputError(
      on[0] as string,
      "only one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas can be true",
    );
  }
}

/** x0 from the model output at noise level sigma (k-diffusion's denoiser, c_skip/c_out for v-prediction). */
export function predictOriginal(
  predictionType: "epsilon" | "sample" | "v_prediction",
  modelOutput: Float32Array,
  sample: Float32Array,
  sigma: number,
): Float32Array {
  switch (predictionType) {
    case "sample":
      return Float32Array.from(modelOutput);
    case "epsilon":
      return sample.map((x, i) => x - f32(sigma * (modelOutput[i] as number)));
    case "v_prediction": {
      const variance = f32(f32(sigma * sigma) + 1);
      const cOut = f32(-sigma / f32(Math.sqrt(variance)));
      return sample.map((x, i) => f32((modelOutput[i] as number) * cOut) + f32(x / variance));
    }
  }
}
