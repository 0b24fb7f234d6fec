import { InvalidArgumentError } from "@dmesh/runtime/errors";
import {
  checkSchedulerOptions,
  familyByClassName,
  type ResolvedScheduler,
  type ResolvedSpec,
  type SchedulerClassName,
  type SchedulerFamily,
  schedulerConfigOverrides,
  schedulerSpecOfConfig,
  UNSUPPORTED_SAMPLERS,
} from "@dmesh/spec";
import type { ModelDirectory } from "../models/pipeline-directory.js";
import { type Scheduler, SchedulerInputError } from "../schedulers/index.js";
import type { SchedulerPool } from "./scheduler-pool.js";

/** The scheduler a request runs on one model: its class and scheduler_config.json keys. */
export interface ModelScheduler {
  readonly className: SchedulerClassName;
  readonly config: Readonly<Record<string, unknown>>;
  /** Set when the model's own scheduler class is not one the mesh runs, and Euler runs in its place: why. */
  readonly substituted: string | undefined;
}

const FALLBACK: SchedulerClassName = "EulerDiscreteScheduler";

/**
 * The request's scheduler, or the model's own (scheduler_config.json), with the request's options on top
 * (`packages/spec`'s scheduler table maps them to config keys). Options the request gave without a kind are
 * checked against the model's own family here, where it is known: an option that family lacks is an
 * INVALID_ARGUMENT naming the field and the model, never an option silently dropped.
 */
export function modelScheduler(
  dir: Pick<ModelDirectory, "id" | "schedulerConfig">,
  spec: ResolvedScheduler,
  prefix = "spec.scheduler",
): ModelScheduler {
  const own = String(dir.schedulerConfig._class_name ?? "");
  let className = spec.scheduler;
  let substituted: string | undefined;
  if (!className) {
    const family = familyByClassName(own);
    // A model shipping a class we lack (e.g. DPMSolverSDEScheduler) still runs, with Euler, as the request
    // named none; the generation reports Euler, so the infotext says what ran.
    className = family?.className ?? FALLBACK;
    if (!family) {
      substituted =
        UNSUPPORTED_SAMPLERS.find((u) => u.className !== undefined && u.className === own)?.why ??
        `${JSON.stringify(own.slice(0, 64))} is not a scheduler this mesh runs`;
    }
    checkSchedulerOptions(
      spec,
      familyByClassName(className) as SchedulerFamily,
      prefix,
      `model "${dir.id}"'s own scheduler ${family ? "" : "(Euler in place of its own) "}`,
    );
  }
  return {
    className,
    config: { ...dir.schedulerConfig, ...schedulerConfigOverrides(spec, className) },
    substituted,
  };
}

/** A pooled scheduler for `chosen`, set to `steps`; a configuration it refuses is an INVALID_ARGUMENT. */
export function takeScheduler(pool: SchedulerPool, chosen: ModelScheduler, steps: number): Scheduler {
  try {
    return pool.take(chosen.className, chosen.config, steps);
  } catch (err) {
    if (err instanceof SchedulerInputError)
      throw new InvalidArgumentError(`spec.scheduler (${err.field})`, err.message);
    throw err;
  }
}

/**
 * Checks a request's scheduler against the models it will run on, before any work: the options against each
 * model's family, and the configuration by building the base's scheduler once. Returns what the base will
 * run, as a SchedulerSpec's fields (the generation reports it, and the infotext names it).
 */
export function checkRequestScheduler(
  pool: SchedulerPool,
  models: { base: ModelDirectory; refiner: ModelDirectory | undefined },
  spec: ResolvedSpec,
): { scheduler: ReturnType<typeof schedulerSpecOfConfig> & { steps: number }; substituted?: string } {
  const chosen = modelScheduler(models.base, spec);
  const probe = takeScheduler(pool, chosen, spec.steps);
  pool.give([probe]);
  if (models.refiner) pool.give([takeScheduler(pool, modelScheduler(models.refiner, spec), spec.steps)]);
  return {
    scheduler: { ...schedulerSpecOfConfig(chosen.className, probe.config), steps: spec.steps },
    ...(chosen.substituted ? { substituted: chosen.substituted } : {}),
  };
}
