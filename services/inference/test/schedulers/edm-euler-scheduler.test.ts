import { describe, expect, it } from "vitest";
import { EdmEulerScheduler } from "../../src/schedulers/index.js";
import { dummySampleDeter, meanAbs, preconditionedLoop, scaled, sumAbs } from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_edm_euler.py, EDMEulerSchedulerTest.get_scheduler_config
const base = { num_train_timesteps: 256, sigma_min: 0.002, sigma_max: 80.0 };

describe("EDMEulerScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise / test_full_loop_device: sum 34.1855, mean 0.044 (within 1e-3)", () => {
    const scheduler = new EdmEulerScheduler(base);
    scheduler.setTimesteps(10);
    const sample = preconditionedLoop(scheduler, scaled(dummySampleDeter(), scheduler.initNoiseSigma));
    expect(Math.abs(sumAbs(sample) - 34.1855)).toBeLessThan(1e-3);
    expect(Math.abs(meanAbs(sample) - 0.044)).toBeLessThan(1e-3);
  });
  it("timesteps are c_noise = log(sigma) / 4, from sigma_max down", () => {
    const scheduler = new EdmEulerScheduler(base);
    scheduler.setTimesteps(10);
    expect(scheduler.timesteps[0]).toBeCloseTo(Math.log(80) / 4, 6);
    expect(scheduler.timesteps[9]).toBeCloseTo(Math.log(0.002) / 4, 6);
    expect(scheduler.sigmas?.[10]).toBe(0);
  });
  it("exponential schedule, v-prediction and a sigma_min final sigma run", () => {
    const scheduler = new EdmEulerScheduler({
      ...base,
      sigma_schedule: "exponential",
      prediction_type: "v_prediction",
      final_sigmas_type: "sigma_min",
    });
    scheduler.setTimesteps(10);
    expect(scheduler.sigmas?.[10]).toBeCloseTo(0.002, 6);
    const sample = preconditionedLoop(scheduler, scaled(dummySampleDeter(), scheduler.initNoiseSigma));
    expect(sample.every(Number.isFinite)).toBe(true);
  });
});
