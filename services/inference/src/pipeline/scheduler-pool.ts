import {
  createScheduler,
  type Scheduler,
  type SchedulerKind,
  type SchedulerState,
} from "../schedulers/index.js";

interface Idle {
  /** The state of a scheduler right after `setTimesteps`: what a reused one is reset to. */
  readonly fresh: SchedulerState;
  readonly schedulers: Scheduler[];
}

/**
 * Scheduler instances reused across requests. Building one (its 1000-step training schedule, then the
 * inference sigmas) allocates more than a tiny model's whole denoising loop, and that garbage outliving a
 * request is what made the process's memory creep; so a finished request's schedulers are kept, and the next
 * request with the same kind, configuration and step count gets one reset to its fresh state.
 */
export class SchedulerPool {
  private readonly idle = new Map<string, Idle>();
  private readonly keys = new WeakMap<Scheduler, string>();

  constructor(
    private readonly maxKeys = 32,
    private readonly maxIdlePerKey = 16,
  ) {}

  /** A scheduler as `createScheduler(kind, config)` then `setTimesteps(steps)` leave it. */
  take(kind: SchedulerKind, config: Readonly<Record<string, unknown>>, steps: number): Scheduler {
    const key = JSON.stringify([kind, config, steps]);
    const idle = this.idle.get(key);
    const reused = idle?.schedulers.pop();
    if (idle && reused) {
      reused.setState(idle.fresh);
      return reused;
    }
    const scheduler = createScheduler(kind, config);
    scheduler.setTimesteps(steps);
    this.keys.set(scheduler, key);
    if (!idle) {
      this.idle.set(key, { fresh: scheduler.getState(), schedulers: [] });
      if (this.idle.size > this.maxKeys) this.idle.delete(this.idle.keys().next().value as string);
    }
    return scheduler;
  }

  /** Hands schedulers back once their request is done with them. */
  give(schedulers: Iterable<Scheduler>): void {
    for (const scheduler of schedulers) {
      const idle = this.idle.get(this.keys.get(scheduler) ?? "");
      if (idle && idle.schedulers.length < this.maxIdlePerKey && !idle.schedulers.includes(scheduler)) {
        idle.schedulers.push(scheduler);
      }
    }
  }
}
