import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { type ResolvedScheduler, schedulerConfigOverrides } from "@dmesh/spec";
import { SchedulerInputError } from "./scheduler-config.js";
import { createScheduler } from "./scheduler-registry.js";

export interface ComputedSchedule {
  readonly timesteps: number[];
  readonly sigmas: number[];
  readonly initNoiseSigma: number;
  /** The configuration the scheduler ran with, `_class_name` first, as scheduler_config.json spells it. */
  readonly configJson: string;
}

/**
 * The schedule a scheduler makes for `steps`, configured as the pipeline configures it: the model's
 * scheduler_config.json, then the caller's raw overrides, then the request's options. A key the scheduler
 * cannot use is INVALID_ARGUMENT named under `field` (the request's scheduler spec).
 */
export function computeSchedule(
  base: Record<string, unknown>,
  overrides: Record<string, unknown>,
  resolved: ResolvedScheduler,
  steps: number,
  field: string,
): ComputedSchedule {
  const kind =
    resolved.scheduler ?? String(overrides._class_name ?? base._class_name ?? "EulerDiscreteScheduler");
  const config = { ...base, ...overrides, ...schedulerConfigOverrides(resolved, kind) };
  try {
    const scheduler = createScheduler(kind, config);
    scheduler.setTimesteps(steps);
    return {
      timesteps: [...scheduler.timesteps],
      sigmas: scheduler.sigmas ? [...scheduler.sigmas] : [],
      initNoiseSigma: scheduler.initNoiseSigma,
      configJson: JSON.stringify({ _class_name: scheduler.kind, ...scheduler.config }),
    };
  } catch (err) {
    if (err instanceof SchedulerInputError)
      throw new InvalidArgumentError(`${field}.${err.field}`, err.message);
    throw err;
  }
}
