import type { SchedulerClassName } from "@dmesh/spec";
import type { NoiseSource } from "../random/index.js";

/** diffusers class names of the schedulers implemented here: every family of `packages/spec`'s table. */
export type SchedulerKind = SchedulerClassName;

export interface StepOptions {
  /** DDIM's eta: the weight of the noise added at each step (0 = deterministic). */
  readonly eta?: number;
  /** The noise for a stochastic step, one value per sample element (diffusers' `variance_noise`). */
  readonly noise?: Float32Array;
  /** The seeded source a stochastic step draws from when no `noise` is given (diffusers' `generator`). */
  readonly generator?: NoiseSource;
  /** Images in the sample (its N); only dynamic thresholding and learned-variance outputs need it. Default 1. */
  readonly batchSize?: number;
}

export interface StepResult {
  readonly prevSample: Float32Array;
  /** The model's estimate of the clean sample at this step (for previews), where the scheduler has one. */
  readonly predOriginalSample?: Float32Array;
}

/** Solver memory that a multistep scheduler carries between steps. */
export type SolverMemoryValue = number | null | Float32Array | (Float32Array | null)[];

/**
 * Everything a scheduler needs to continue a denoising loop exactly where it stopped: plain JSON-able values
 * plus Float32Arrays (encode those as bytes where JSON is needed).
 */
export interface SchedulerState {
  readonly kind: SchedulerKind;
  /** The effective configuration; a state only restores into a scheduler with the same one. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly numInferenceSteps: number | null;
  readonly timesteps: readonly number[];
  readonly sigmas: readonly number[] | null;
  readonly stepIndex: number | null;
  readonly beginIndex: number | null;
  readonly memory: Readonly<Record<string, SolverMemoryValue>>;
}

/**
 * A diffusers scheduler over flat NCHW float32 samples. Like diffusers' own, it keeps its step index: call
 * `step` once per entry of `timesteps`, in order (after `setBeginIndex` when starting part-way, for img2img or
 * a refiner handoff).
 */
export interface Scheduler {
  readonly kind: SchedulerKind;
  readonly config: Readonly<Record<string, unknown>>;
  /** Model evaluations per timestep entry pair (2 for Heun, whose timesteps repeat). */
  readonly order: number;
  readonly numInferenceSteps: number | null;
  /** The timesteps to feed the model, in order (a copy). */
  readonly timesteps: number[];
  /** The noise levels per timestep plus the final one, for the schedulers that have them (a copy). */
  readonly sigmas: Float32Array | null;
  /** Standard deviation of the initial noise: multiply unit Gaussian latents by it. */
  readonly initNoiseSigma: number;
  readonly stepIndex: number | null;
  readonly beginIndex: number | null;
  setTimesteps(numInferenceSteps: number): void;
  setBeginIndex(beginIndex: number): void;
  /** Scales the model input for this timestep; may return `sample` itself when no scaling applies. */
  scaleModelInput(sample: Float32Array, timestep: number): Float32Array;
  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult;
  /** Noises a clean sample to `timestep` (img2img, inpainting). */
  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array;
  getState(): SchedulerState;
  setState(state: SchedulerState): void;
}
