import { describe, expect, it } from "vitest";
import { LmsScheduler } from "../../src/schedulers/index.js";
import {
  dummyNoiseDeter,
  dummySampleDeter,
  fullLoop,
  meanAbs,
  scaled,
  sumAbs,
} from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_lms.py, LMSDiscreteSchedulerTest.get_scheduler_config
const base = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };

function lmsLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new LmsScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  return fullLoop(scheduler, scaled(dummySampleDeter(), scheduler.initNoiseSigma));
}

describe("LMSDiscreteScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise / test_full_loop_device: sum 1006.388, mean 1.31", () => {
    const sample = lmsLoop();
    expect(Math.abs(sumAbs(sample) - 1006.388)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 1.31)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: sum 0.0017, mean 2.2676e-06", () => {
    const sample = lmsLoop({ prediction_type: "v_prediction" });
    expect(Math.abs(sumAbs(sample) - 0.0017)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 2.2676e-6)).toBeLessThan(1e-3);
  });
  it("test_full_loop_device_karras_sigmas: sum 3812.9927 (within 2e-2), mean 4.9648", () => {
    const sample = lmsLoop({ use_karras_sigmas: true });
    expect(Math.abs(sumAbs(sample) - 3812.9927)).toBeLessThan(2e-2);
    expect(Math.abs(meanAbs(sample) - 4.9648)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 27663.6895, mean 36.0204", () => {
    const scheduler = new LmsScheduler(base);
    scheduler.setTimesteps(10);
    const timesteps = scheduler.timesteps.slice(8);
    let sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
    sample = scheduler.addNoise(sample, dummyNoiseDeter(), timesteps[0] as number);
    sample = fullLoop(scheduler, sample, {}, timesteps);
    expect(Math.abs(sumAbs(sample) - 27663.6895)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 36.0204)).toBeLessThan(1e-3);
  });
});
