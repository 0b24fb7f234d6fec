import { SchedulerBase } from "./scheduler-base.js";
import { SchedulerInputError } from "./scheduler-config.js";
import { trainingSigmas } from "./sigma-schedules.js";
import { type NoiseLevel, noiseLevel } from "./solver-math.js";
import { f32 } from "./torch-numerics.js";

/**
 * What the DPM-Solver family (DPM-Solver multistep and single-step, DEIS, UniPC) shares: unscaled model
 * inputs, unit initial noise, samples noised as alpha_t x + sigma_t noise, and diffusers' lookup that takes a
 * timestep missing from the schedule to mean its last step.
 */
export abstract class SolverSchedulerBase<
  C extends Readonly<Record<string, unknown>>,
> extends SchedulerBase<C> {
  protected readonly trainSigmas: Float32Array;

  constructor(config: C, alphasCumprod: Float32Array) {
    super(config);
    this.trainSigmas = trainingSigmas(alphasCumprod);
  }

  get initNoiseSigma(): number {
    return 1;
  }

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    if (noise.length !== original.length) {
      throw new SchedulerInputError(
        "noise",
        `has ${noise.length} values but the sample has ${original.length}`,
      );
    }
    const index = this.begin === null ? this.solverIndexForTimestep(timestep) : (this.index ?? this.begin);
    const level = this.levelAt(index);
    return original.map((x, i) => f32(level.alpha * x) + f32(level.sigma * (noise[i] as number)));
  }

  /** The step index a first `step` starts from (the begin index, else the timestep's). */
  protected startIndex(timestep: number): number {
    if (this.index === null) this.index = this.begin ?? this.solverIndexForTimestep(timestep);
    return this.index;
  }

  /** alpha_t, sigma_t and lambda at an index of the inference sigmas. */
  protected levelAt(index: number): NoiseLevel {
    if (this.sigmaSchedule === null) {
      throw new SchedulerInputError("num_inference_steps", "call setTimesteps first");
    }
    const sigma = this.sigmaSchedule[index];
    if (sigma === undefined) throw new SchedulerInputError("timestep", "the schedule is finished");
    return noiseLevel(sigma);
  }

  /** diffusers' solver `index_for_timestep`: like the others, but a timestep not in the schedule means the last. */
  private solverIndexForTimestep(timestep: number): number {
    return this.schedule.includes(timestep) ? this.indexForTimestep(timestep) : this.schedule.length - 1;
  }
}
