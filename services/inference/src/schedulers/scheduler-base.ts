import type { NoiseSource } from "../random/index.js";
import type {
  Scheduler,
  SchedulerKind,
  SchedulerState,
  SolverMemoryValue,
  StepOptions,
  StepResult,
} from "./scheduler.js";
import { SchedulerInputError } from "./scheduler-config.js";

/**
 * What every scheduler shares: the schedule it was set to, diffusers' step/begin index bookkeeping, input
 * checks and state capture. Subclasses compute the schedule and the update itself.
 */
export abstract class SchedulerBase<C extends Readonly<Record<string, unknown>>> implements Scheduler {
  abstract readonly kind: SchedulerKind;
  readonly order: number = 1;
  protected schedule: number[] = [];
  protected sigmaSchedule: Float32Array | null = null;
  protected inferenceSteps: number | null = null;
  protected index: number | null = null;
  protected begin: number | null = null;

  constructor(readonly config: C) {}

  abstract get initNoiseSigma(): number;
  abstract setTimesteps(numInferenceSteps: number): void;
  abstract scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  abstract step(
    modelOutput: Float32Array,
    timestep: number,
    sample: Float32Array,
    options?: StepOptions,
  ): StepResult;
  abstract addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array;

  get numInferenceSteps(): number | null {
    return this.inferenceSteps;
  }
  get timesteps(): number[] {
    return [...this.schedule];
  }
  get sigmas(): Float32Array | null {
    return this.sigmaSchedule && Float32Array.from(this.sigmaSchedule);
  }
  get stepIndex(): number | null {
    return this.index;
  }
  get beginIndex(): number | null {
    return this.begin;
  }

  setBeginIndex(beginIndex: number): void {
    if (!Number.isInteger(beginIndex) || beginIndex < 0 || beginIndex >= Math.max(1, this.schedule.length)) {
      throw new SchedulerInputError(
        "begin_index",
        `must be an index into the ${this.schedule.length} timesteps`,
      );
    }
    this.begin = beginIndex;
  }

  getState(): SchedulerState {
    return {
      kind: this.kind,
      config: { ...this.config },
      numInferenceSteps: this.inferenceSteps,
      timesteps: [...this.schedule],
      sigmas: this.sigmaSchedule && Array.from(this.sigmaSchedule),
      stepIndex: this.index,
      beginIndex: this.begin,
      memory: copyMemory(this.saveMemory()),
    };
  }

  setState(state: SchedulerState): void {
    if (state?.kind !== this.kind) {
      throw new SchedulerInputError("state", `was saved from ${String(state?.kind)}, not ${this.kind}`);
    }
    if (JSON.stringify(state.config) !== JSON.stringify(this.config)) {
      throw new SchedulerInputError("state", "was saved from a scheduler with a different configuration");
    }
    const steps = state.timesteps.length;
    const indexOk = (i: number | null) => i === null || (Number.isInteger(i) && i >= 0 && i <= steps);
    if (!indexOk(state.stepIndex) || !indexOk(state.beginIndex)) {
      throw new SchedulerInputError("state", "stepIndex and beginIndex must be indices into its timesteps");
    }
    this.restoreMemory(copyMemory(state.memory));
    this.inferenceSteps = state.numInferenceSteps;
    this.schedule = [...state.timesteps];
    this.sigmaSchedule = state.sigmas && Float32Array.from(state.sigmas);
    this.index = state.stepIndex;
    this.begin = state.beginIndex;
  }

  /** The solver's memory between steps (none by default). */
  protected saveMemory(): Record<string, SolverMemoryValue> {
    return {};
  }
  protected restoreMemory(_memory: Readonly<Record<string, SolverMemoryValue>>): void {}

  /** Starts a new schedule: diffusers resets both indices in `set_timesteps`. */
  protected resetSchedule(timesteps: number[], sigmas: Float32Array | null, numInferenceSteps: number): void {
    this.schedule = timesteps;
    this.sigmaSchedule = sigmas;
    this.inferenceSteps = numInferenceSteps;
    this.index = null;
    this.begin = null;
  }

  protected checkInferenceSteps(n: number, max: number): void {
    if (!Number.isInteger(n) || n < 1) {
      throw new SchedulerInputError("num_inference_steps", `must be a positive integer, got ${n}`);
    }
    if (n > max) {
      throw new SchedulerInputError("num_inference_steps", `must be at most ${max}, got ${n}`);
    }
  }

  /** Throws unless `setTimesteps` ran and the arrays agree in length. */
  protected checkStepInputs(modelOutput: Float32Array, sample: Float32Array): void {
    if (this.inferenceSteps === null) {
      throw new SchedulerInputError("num_inference_steps", "call setTimesteps before step");
    }
    if (modelOutput.length !== sample.length) {
      throw new SchedulerInputError(
        "model_output",
        `has ${modelOutput.length} values but the sample has ${sample.length}`,
      );
    }
  }

  /**
   * diffusers' `index_for_timestep`: the first match, or the second when the timestep repeats, so that a
   * schedule entered part-way (img2img) does not skip a sigma.
   */
  protected indexForTimestep(timestep: number): number {
    const matches: number[] = [];
    for (let i = 0; i < this.schedule.length; i++) if (this.schedule[i] === timestep) matches.push(i);
    const index = matches.length > 1 ? matches[1] : matches[0];
    if (index === undefined) {
      throw new SchedulerInputError("timestep", `${timestep} is not in the schedule set by setTimesteps`);
    }
    return index;
  }

  /** diffusers' `_init_step_index`, run by the first `scale_model_input` or `step`. */
  protected currentIndex(timestep: number): number {
    if (this.index === null) this.index = this.begin ?? this.indexForTimestep(timestep);
    if (this.index >= this.schedule.length) {
      throw new SchedulerInputError("timestep", "the schedule is finished; call setTimesteps to start again");
    }
    return this.index;
  }

  /** The step's noise: given explicitly, or drawn from the generator as diffusers' `randn_tensor` would. */
  protected noiseFor(options: StepOptions | undefined, count: number): Float32Array {
    if (options?.noise) {
      if (options.noise.length !== count) {
        throw new SchedulerInputError(
          "noise",
          `has ${options.noise.length} values but the sample has ${count}`,
        );
      }
      return options.noise;
    }
    const generator: NoiseSource | undefined = options?.generator;
    if (!generator)
      throw new SchedulerInputError("generator", `${this.kind} needs noise or a generator here`);
    return generator.randn(count);
  }
}

function copyMemory(memory: Readonly<Record<string, SolverMemoryValue>>): Record<string, SolverMemoryValue> {
  const copy = (v: SolverMemoryValue): SolverMemoryValue =>
    v instanceof Float32Array
      ? Float32Array.from(v)
      : Array.isArray(v)
        ? v.map((x) => x && Float32Array.from(x))
        : v;
  return Object.fromEntries(Object.entries(memory).map(([k, v]) => [k, copy(v)]));
}
