import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { ResolvedSpec } from "@dmesh/spec";
import { type Generator, GeneratorInputError, type GeneratorState } from "../random/index.js";
import { type Scheduler, SchedulerInputError, type SchedulerState } from "../schedulers/index.js";
import { decodeSchedulerStates } from "./checkpoint-codec.js";
import type { DenoiseState } from "./generation-types.js";
import type { DenoisePhase } from "./phase-plan.js";

/** Images [first, first + size) denoised together in one UNet batch. */
export interface BatchPlan {
  readonly first: number;
  readonly size: number;
  /** This batch continues from the request's checkpoint. */
  readonly resume: boolean;
}

/** A checked checkpoint: where its batch stopped, and each row's state to put back. */
export interface ResumePoint {
  readonly imageIndex: number;
  readonly images: number;
  /** Index of the phase it stopped in, and the step within that phase. */
  readonly phase: number;
  readonly step: number;
  latents(row: number): Float32Array;
  restore(row: number, scheduler: Scheduler, generator: Generator): void;
}

/**
 * Splits a request's images into UNet batches of up to `perRun`. On resume, the images before the checkpoint
 * are made again (same seeds, same bytes), the checkpoint's batch keeps the size it was paused with (this
 * process may batch differently from the one that paused), and the rest follow.
 */
export function planBatches(count: number, perRun: number, point: ResumePoint | undefined): BatchPlan[] {
  const batches: BatchPlan[] = [];
  let next = 0;
  const fill = (end: number) => {
    while (next < end) {
      const size = Math.min(perRun, end - next);
      batches.push({ first: next, size, resume: false });
      next += size;
    }
  };
  if (point) {
    fill(point.imageIndex);
    batches.push({ first: point.imageIndex, size: point.images, resume: true });
    next += point.images;
  }
  fill(count);
  return batches;
}

/** Checks a checkpoint against the request it claims to continue; every problem names its field. */
export function readResume(
  state: DenoiseState,
  spec: ResolvedSpec,
  phases: readonly DenoisePhase[],
  totalSteps: number,
): ResumePoint {
  const bad = (field: string, message: string) => new InvalidArgumentError(`resume_from.${field}`, message);
  const [images = 0, channels, height, width] = state.latentShape;
  if (
    state.latentShape.length !== 4 ||
    channels !== 4 ||
    height !== spec.height / 8 ||
    width !== spec.width / 8 ||
    images < 1
  ) {
    throw bad(
      "latents",
      `shape [${state.latentShape.join(", ")}] is not [n, 4, ${spec.height / 8}, ${spec.width / 8}]`,
    );
  }
  if (state.imageIndex < 0 || state.imageIndex + images > spec.count) {
    throw bad(
      "image_index",
      `images ${state.imageIndex}..${state.imageIndex + images - 1} are not in the request's ${spec.count}`,
    );
  }
  if (state.totalSteps !== totalSteps || state.step < 0 || state.step > totalSteps) {
    throw bad(
      "step",
      `step ${state.step} of ${state.totalSteps} does not fit this request's ${totalSteps} steps`,
    );
  }
  const phase = phases.findIndex((p) => p.name === state.phase);
  const current = phases[phase];
  if (!current || state.step < current.offset || state.step > current.offset + current.timesteps.length) {
    throw bad("phase", `step ${state.step} is not in this request's ${state.phase} phase`);
  }
  const schedulers = parseRows(
    () => decodeSchedulerStates(state.schedulerState),
    images,
    () => bad("scheduler_state_json", `must be a JSON array of ${images} scheduler states`),
  );
  const generators = parseRows(
    () => JSON.parse(state.rngState),
    images,
    () => bad("rng_state_json", `must be a JSON array of ${images} generator states`),
  );
  const size = state.latents.length / images;
  return {
    imageIndex: state.imageIndex,
    images,
    phase,
    step: state.step - current.offset,
    latents: (row) => state.latents.slice(row * size, (row + 1) * size),
    restore: (row, scheduler, generator) => {
      try {
        scheduler.setState(schedulers[row] as SchedulerState);
      } catch (err) {
        if (err instanceof SchedulerInputError) throw bad("scheduler_state_json", err.message);
        throw err;
      }
      try {
        generator.setState(generators[row] as GeneratorState);
      } catch (err) {
        if (err instanceof GeneratorInputError) throw bad("rng_state_json", err.message);
        throw err;
      }
    },
  };
}

function parseRows(parse: () => unknown, rows: number, invalid: () => Error): unknown[] {
  let value: unknown;
  try {
    value = parse();
  } catch {
    throw invalid();
  }
  if (!Array.isArray(value) || value.length !== rows || !value.every((v) => v && typeof v === "object"))
    throw invalid();
  return value;
}
