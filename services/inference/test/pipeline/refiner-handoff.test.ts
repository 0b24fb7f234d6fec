import { describe, expect, it } from "vitest";
import { clientDecimal } from "../../src/pipeline/client-decimal.js";
import { baseStepCount, refinerTimesteps, timestepCutoff } from "../../src/pipeline/refiner-handoff.js";
import { createScheduler, type Scheduler } from "../../src/schedulers/index.js";

// stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json (the fields that shape the schedule).
const SDXL = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  steps_offset: 1,
  timestep_spacing: "leading",
  prediction_type: "epsilon",
};

function scheduler(
  kind: "EulerDiscreteScheduler" | "HeunDiscreteScheduler" | "DPMSolverMultistepScheduler",
  steps: number,
  config = {},
): Scheduler {
  const s = createScheduler(kind, { ...SDXL, ...config });
  s.setTimesteps(steps);
  return s;
}

describe("the SDXL base -> refiner cut, as diffusers makes it", () => {
  it("cuts at int(round(1000 - fraction * 1000)), Python's round being half-to-even", () => {
    const s = scheduler("EulerDiscreteScheduler", 10);
    expect(timestepCutoff(0.8, s)).toBe(200);
    expect(timestepCutoff(0.5005, s)).toBe(500); // 499.5 -> 500
    expect(timestepCutoff(0.4985, s)).toBe(502); // 501.5 -> 502
    expect(timestepCutoff(0.4995, s)).toBe(500); // 500.5 -> 500
  });

  it("40 steps at 0.8 (diffusers' documented split): the base runs 32, the refiner the last 8", () => {
    const base = scheduler("EulerDiscreteScheduler", 40);
    const all = base.timesteps;
    expect(all.slice(0, 3)).toEqual([976, 951, 926]);
    expect(baseStepCount(all, 0.8, base)).toBe(32);
    const refiner = scheduler("EulerDiscreteScheduler", 40);
    const rest = refinerTimesteps(refiner, 0.8);
    expect(rest).toEqual(all.slice(32));
    expect(rest[0]).toBe(176);
    expect(refiner.beginIndex).toBe(32);
  });

  it("trailing spacing splits the same way", () => {
    const base = scheduler("EulerDiscreteScheduler", 25, { timestep_spacing: "trailing" });
    const count = baseStepCount(base.timesteps, 0.7, base);
    const refiner = scheduler("EulerDiscreteScheduler", 25, { timestep_spacing: "trailing" });
    expect(refinerTimesteps(refiner, 0.7)).toEqual(base.timesteps.slice(count));
    expect(base.timesteps.slice(0, count).every((t) => t >= 300)).toBe(true);
    expect(base.timesteps.slice(count).every((t) => t < 300)).toBe(true);
  });

  it("a second-order scheduler starts one entry earlier when the count would split a step pair", () => {
    const heun = scheduler("HeunDiscreteScheduler", 10);
    // Heun repeats every timestep but the first: 901, 801, 801, ..., 101, 101, 1, 1. Four entries are below
    // 200, an even count, so the refiner takes five, as get_timesteps' `num_inference_steps + 1`.
    expect(heun.timesteps.slice(-5)).toEqual([201, 101, 101, 1, 1]);
    expect(refinerTimesteps(heun, 0.8)).toEqual([201, 101, 101, 1, 1]);
    expect(heun.beginIndex).toBe(14);
  });

  it("reads a proto float as the decimal the client wrote", () => {
    const f32 = Math.fround;
    expect(f32(0.9) * 10).toBeLessThan(9);
    expect(clientDecimal(f32(0.9)) * 10).toBe(9);
    expect(clientDecimal(f32(0.8))).toBe(0.8);
    expect(clientDecimal(f32(0.35))).toBe(0.35);
    expect(clientDecimal(1)).toBe(1);
  });
});
