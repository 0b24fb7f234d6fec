import type { ServiceImpl } from "@connectrpc/connect";
import { SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type {
  ComputeScheduleRequest,
  SchedulerService,
} from "@dmesh/contracts/dmesh/scheduler/v1/scheduler_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime";
import { familyByClassName, LIMITS, validateSchedulerSpec } from "@dmesh/spec";
import type { ModelRegistry } from "./models/model-registry.js";
import { computeSchedule } from "./schedulers/compute-schedule.js";
import { listSchedulers } from "./schedulers/index.js";

/** SchedulerService: the schedulers the pipeline uses, for clients that plan or inspect schedules. */
export class SchedulerHandler implements ServiceImpl<typeof SchedulerService> {
  constructor(private readonly models: ModelRegistry) {}

  listSchedulers() {
    return {
      schedulers: listSchedulers().map((s) => ({
        kind: familyByClassName(s.kind)?.kind ?? SchedulerKind.UNSPECIFIED,
        className: s.kind,
        aliases: [...s.aliases],
        stochastic: s.stochastic,
        options: s.options.map((o) => ({
          key: o.key,
          type: o.type,
          description: o.description,
          defaultJson: JSON.stringify(o.default ?? null),
        })),
      })),
    };
  }

  computeSchedule(req: ComputeScheduleRequest) {
    const base = req.model ? { ...(this.models.info(req.model, "model").dir?.schedulerConfig ?? {}) } : {};
    let overrides: Record<string, unknown> = {};
    if (req.configJson) {
      try {
        overrides = JSON.parse(req.configJson) as Record<string, unknown>;
      } catch {
        throw new InvalidArgumentError("config_json", "is not valid JSON");
      }
      if (typeof overrides !== "object" || overrides === null || Array.isArray(overrides)) {
        throw new InvalidArgumentError("config_json", "must be a JSON object");
      }
    }
    const spec = req.scheduler;
    const resolved = validateSchedulerSpec(spec, "scheduler");
    const steps = spec?.steps ?? 20;
    if (steps < LIMITS.minSteps || steps > LIMITS.maxSteps) {
      throw new InvalidArgumentError(
        "scheduler.steps",
        `must be in [${LIMITS.minSteps}, ${LIMITS.maxSteps}]`,
      );
    }
    return computeSchedule(base, overrides, resolved, steps, "scheduler");
  }
}
