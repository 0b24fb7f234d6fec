import { predictionTypeOption } from "./common-options.js";
import { linspace } from "./numpy-numerics.js";
import type { StepOptions, StepResult } from "./scheduler.js";
import { SchedulerBase } from "./scheduler-base.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { f32, linspaceF32 } from "./torch-numerics.js";

export const edmEulerOptions = {
  sigma_min: { type: "number", default: 0.002, min: 0, description: "Lowest sigma of the schedule." },
  sigma_max: { type: "number", default: 80.0, min: 0, description: "Highest sigma of the schedule." },
  sigma_data: {
    type: "number",
    default: 0.5,
    min: 0,
    description: "Standard deviation of the data distribution (EDM preconditioning).",
  },
  sigma_schedule: {
    type: "enum",
    values: ["karras", "exponential"],
    default: "karras",
    description: "How sigmas go from sigma_max to sigma_min: Karras et al.'s rho schedule or log-uniform.",
  },
  num_train_timesteps: {
    type: "integer",
    default: 1000,
    min: 1,
    description: "Number of diffusion steps the model was trained with.",
  },
  prediction_type: predictionTypeOption(["epsilon", "v_prediction"]),
  rho: { type: "number", default: 7.0, min: 0, description: "The Karras schedule's rho." },
  final_sigmas_type: {
    type: "enum",
    values: ["zero", "sigma_min"],
    default: "zero",
    description: "The sigma after the last step: 0, or the schedule's last sigma.",
  },
} as const satisfies OptionSpecs;

export type EdmEulerConfig = ConfigOf<typeof edmEulerOptions>;

/**
 * diffusers' EDMEulerScheduler (Karras et al. 2022, algorithm 2 with EDM preconditioning, no churn), for
 * models trained in the EDM formulation: the model sees c_in * x at timestep c_noise = log(sigma) / 4, and its
 * output is mixed with the sample by c_skip and c_out.
 */
export class EdmEulerScheduler extends SchedulerBase<EdmEulerConfig> {
  readonly kind = "EDMEulerScheduler";

  constructor(raw: unknown) {
    const config = parseConfig(edmEulerOptions, raw);
    if (!(config.sigma_min > 0 && config.sigma_max > config.sigma_min)) {
      throw new SchedulerInputError("sigma_max", "needs 0 < sigma_min < sigma_max");
    }
    if (!(config.sigma_data > 0)) throw new SchedulerInputError("sigma_data", "must be > 0");
    super(config);
  }

  get initNoiseSigma(): number {
    return Math.sqrt(this.config.sigma_max ** 2 + 1);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    this.checkInferenceSteps(numInferenceSteps, config.num_train_timesteps);
    const n = numInferenceSteps;
    let sigmas: Float32Array;
    if (config.sigma_schedule === "karras") {
      const minInvRho = config.sigma_min ** (1 / config.rho);
      const maxInvRho = config.sigma_max ** (1 / config.rho);
      sigmas = Float32Array.from(
        linspace(0, 1, n).map((ramp) => (maxInvRho + ramp * (minInvRho - maxInvRho)) ** config.rho),
      );
    } else {
      // torch.linspace's default dtype: float32, then exp in float32.
      sigmas = linspaceF32(Math.log(config.sigma_min), Math.log(config.sigma_max), n)
        .map((v) => f32(Math.exp(v)))
        .reverse();
    }
    const timesteps = Array.from(sigmas, (s) => f32(0.25 * f32(Math.log(s))));
    const last = config.final_sigmas_type === "sigma_min" ? (sigmas[n - 1] as number) : 0;
    this.resetSchedule(timesteps, Float32Array.from([...sigmas, last]), n);
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const sigma = this.sigmaAt(this.currentIndex(timestep));
    const cIn = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + f32(this.config.sigma_data ** 2)))));
    return sample.map((x) => f32(x * cIn));
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
    const dataSq = f32(this.config.sigma_data ** 2);
    const variance = f32(f32(sigma * sigma) + dataSq);
    const cSkip = f32(dataSq / variance);
    const signed = this.config.prediction_type === "epsilon" ? sigma : -sigma;
    const cOut = f32(f32(signed * f32(this.config.sigma_data)) / f32(Math.sqrt(variance)));
    const predOriginal = sample.map((x, i) => f32(cSkip * x) + f32(cOut * (modelOutput[i] as number)));
    const dt = f32(this.sigmaAt(index + 1) - sigma);
    const prevSample = sample.map((x, i) => {
      const derivative = f32(f32(x - (predOriginal[i] as number)) / sigma);
      return x + f32(derivative * dt);
    });
    this.index = index + 1;
    return { prevSample, predOriginalSample: predOriginal };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    if (noise.length !== original.length) {
      throw new SchedulerInputError(
        "noise",
        `has ${noise.length} values but the sample has ${original.length}`,
      );
    }
    const index = this.begin === null ? this.indexForTimestep(timestep) : (this.index ?? this.begin);
    const sigma = this.sigmaAt(index);
    return original.map((x, i) => x + f32((noise[i] as number) * sigma));
  }

  private sigmaAt(index: number): number {
    if (this.sigmaSchedule === null) {
      throw new SchedulerInputError("num_inference_steps", "call setTimesteps first");
    }
    return this.sigmaSchedule[index] as number;
  }
}
