import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { validateSchedulerSpec } from "@dmesh/spec";
import { describe, expect, it } from "vitest";
import { computeSchedule } from "../../src/schedulers/compute-schedule.js";

const noOptions = validateSchedulerSpec(undefined, "scheduler");

describe("computeSchedule (SchedulerService.ComputeSchedule's domain)", () => {
  it("configures the scheduler from the model's config, then the overrides, and reports what it ran with", () => {
    const base = { _class_name: "DDIMScheduler", num_train_timesteps: 1000, steps_offset: 1 };
    const schedule = computeSchedule(base, { steps_offset: 0 }, noOptions, 4, "scheduler");
    expect(schedule.timesteps).toEqual([750, 500, 250, 0]);
    expect(JSON.parse(schedule.configJson)).toMatchObject({ _class_name: "DDIMScheduler", steps_offset: 0 });
  });

  it("names a key the scheduler cannot use under the request's field", () => {
    const bad = () => computeSchedule({}, { num_train_timesteps: -5 }, noOptions, 4, "scheduler");
    expect(bad).toThrow(InvalidArgumentError);
    expect(bad).toThrow(expect.objectContaining({ field: "scheduler.num_train_timesteps" }));
  });
});
