import { type GenerationSpec, SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { DEFAULTS } from "@dmesh/spec";
import type { StepDefinition, WorkflowDefinition } from "./workflow-definition.js";

/** What a step's duration depends on, as the orchestrator knows it before the step runs. */
export interface RequestShape {
  /** "" = the inference service's default model. */
  readonly model: string;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly scheduler: SchedulerKind;
  readonly count: number;
}

/** The shape of a request for this spec; a size of 0 is the model's native size. */
export function shapeOf(
  spec: GenerationSpec | undefined,
  size?: { width: number; height: number },
): RequestShape {
  return {
    model: spec?.models?.base ?? "",
    width: size?.width || spec?.size?.width || 0,
    height: size?.height || spec?.size?.height || 0,
    steps: spec?.scheduler?.steps ?? DEFAULTS.steps,
    scheduler: spec?.scheduler?.kind ?? SchedulerKind.UNSPECIFIED,
    count: spec?.output?.count || 1,
  };
}

/** Where measurements are kept (StepTimingStore). */
export interface TimingSource {
  average(key: string): Promise<number | undefined>;
}

/**
 * The key a step's measured duration is kept under: its kind and parameters (a txt2img pass and an img2img
 * pass at twice the size differ), and the request's model, size, steps and scheduler.
 */
export function timingKey(step: StepDefinition, shape: RequestShape): string {
  const steps = typeof step.params.steps === "number" ? step.params.steps : shape.steps;
  const params = Object.keys(step.params)
    .sort()
    .map((k) => `${k}=${JSON.stringify(step.params[k])}`)
    .join(",");
  return [
    `${step.kind}(${params})`,
    shape.model || "default",
    `${shape.width}x${shape.height}`,
    `${steps} steps`,
    SchedulerKind[shape.scheduler] ?? String(shape.scheduler),
    `x${shape.count}`,
  ].join("|");
}

/** The key of a step kind's measurements per unit of work on one model, whatever the request's shape. */
export function workKey(step: StepDefinition, shape: RequestShape): string {
  return [step.kind, shape.model || "default", "per work"].join("|");
}

/**
 * A step's work in comparable units: UNet steps × megapixels × images for the generating kinds (a hires pass
 * denoises strength × steps at scale² the pixels), images for the postprocess kinds.
 */
export function stepWork(step: StepDefinition, shape: RequestShape, nativeSize = 1024): number {
  const megapixels = ((shape.width || nativeSize) * (shape.height || nativeSize)) / (1024 * 1024);
  const steps = typeof step.params.steps === "number" ? step.params.steps : shape.steps;
  const scale = typeof step.params.scale === "number" ? step.params.scale : 2;
  const strength = typeof step.params.strength === "number" ? step.params.strength : DEFAULTS.strength;
  switch (step.kind) {
    case "generate":
    case "refine":
      return steps * megapixels * shape.count;
    case "hires":
      return steps * strength * megapixels * scale * scale * shape.count;
    default:
      return shape.count;
  }
}

// A static guess for a mesh that has measured nothing yet: a UNet step on a megapixel image takes about half a
// second on a CPU-only laptop (far less on a GPU); a postprocess step a fifth of a second per image.
const STATIC_SECONDS_PER_WORK: Readonly<Record<string, number>> = { generate: 0.5, refine: 0.5, hires: 0.5 };
const STATIC_POSTPROCESS_SECONDS = 0.2;

/** Stores a step's measured duration under its exact key and, per unit of work, under its kind's. */
export async function recordTiming(
  timings: { record(key: string, seconds: number): Promise<void> },
  step: StepDefinition,
  shape: RequestShape,
  seconds: number,
): Promise<void> {
  await timings.record(timingKey(step, shape), seconds);
  const work = stepWork(step, shape);
  if (work > 0) await timings.record(workKey(step, shape), seconds / work);
}

export interface DurationEstimate {
  readonly seconds: number;
  /** Each step's share, by step id. */
  readonly steps: ReadonlyMap<string, number>;
  /** "measured" only when every step was measured on this mesh. */
  readonly source: "measured" | "static";
}

/**
 * The workflow's duration for a request of this shape: each step's mean measured duration on this mesh (for
 * this shape, else for its kind scaled by the work), else a static guess (`nativeSize` stands in for an unset
 * size).
 */
export async function estimateDuration(
  workflow: WorkflowDefinition,
  shape: RequestShape,
  timings: TimingSource | undefined,
  nativeSize = 1024,
): Promise<DurationEstimate> {
  const steps = new Map<string, number>();
  let measured = true;
  for (const step of workflow.steps) {
    const work = stepWork(step, shape, nativeSize);
    // The same request shape measured, else this kind's measured rate on this model scaled to the work.
    const exact = await timings?.average(timingKey(step, shape));
    const rate = exact === undefined ? await timings?.average(workKey(step, shape)) : undefined;
    if (exact === undefined && rate === undefined) measured = false;
    const guess = (STATIC_SECONDS_PER_WORK[step.kind] ?? STATIC_POSTPROCESS_SECONDS) * work;
    steps.set(step.id, exact ?? (rate !== undefined ? rate * work : guess));
  }
  const seconds = [...steps.values()].reduce((a, b) => a + b, 0);
  return { seconds, steps, source: measured ? "measured" : "static" };
}
