import type { TimestepSpacing } from "./common-options.js";
import { SchedulerBase } from "./scheduler-base.js";
import { SchedulerInputError } from "./scheduler-config.js";
import { trainingSigmas } from "./sigma-schedules.js";
import { f32 } from "./torch-numerics.js";

interface SigmaConfig extends Readonly<Record<string, unknown>> {
  readonly timestep_spacing: TimestepSpacing;
}

/**
 * The k-diffusion style schedulers (Euler, Euler ancestral, Heun): samples live at noise level sigma, the
 * model sees them scaled by 1 / sqrt(sigma^2 + 1), and noising adds sigma * noise.
 */
export abstract class SigmaSchedulerBase<C extends SigmaConfig> extends SchedulerBase<C> {
  protected readonly alphasCumprod: Float32Array;
  protected readonly trainSigmas: Float32Array;

  constructor(config: C, alphasCumprod: Float32Array) {
    super(config);
    this.alphasCumprod = alphasCumprod;
    this.trainSigmas = trainingSigmas(alphasCumprod);
  }

  get initNoiseSigma(): number {
    const sigmas = this.sigmaSchedule ?? this.trainSigmas;
    const max = sigmas.reduce((a, b) => Math.max(a, b), 0);
    const spacing = this.config.timestep_spacing;
    return spacing === "linspace" || spacing === "trailing" ? max : f32(Math.sqrt(f32(f32(max * max) + 1)));
  }

  scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const sigma = this.sigmaAt(this.currentIndex(timestep));
    const scale = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
    return sample.map((x) => x / scale);
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    if (noise.length !== original.length) {
      throw new SchedulerInputError(
        "noise",
        `has ${noise.length} values but the sample has ${original.length}`,
      );
    }
    this.requireSchedule();
    // diffusers: no begin index -> look the timestep up; mid-loop (inpainting) -> the current step; else begin.
    const index = this.begin === null ? this.indexForTimestep(timestep) : (this.index ?? this.begin);
    const sigma = this.sigmaAt(index);
    return original.map((x, i) => x + f32((noise[i] as number) * sigma));
  }

  protected sigmaAt(index: number): number {
    return (this.requireSchedule()[index] as number) ?? 0;
  }

  protected requireSchedule(): Float32Array {
    if (this.sigmaSchedule === null) {
      throw new SchedulerInputError("num_inference_steps", "call setTimesteps first");
    }
    return this.sigmaSchedule;
  }

  /** sigma of training step 0: the last sigma when `final_sigmas_type` is "sigma_min". */
  protected sigmaMinOfTraining(): number {
    return this.trainSigmas[0] as number;
  }
}
