import { describe, expect, it } from "vitest";
import { DdimScheduler } from "../../src/schedulers/index.js";
import {
  dummyModel,
  dummyNoiseDeter,
  dummySampleDeter,
  fullLoop,
  meanAbs,
  sumAbs,
} from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_ddim.py, DDIMSchedulerTest.get_scheduler_config
const base = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  clip_sample: true,
};

function ddimLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new DdimScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  return fullLoop(scheduler, dummySampleDeter(), { eta: 0 });
}

describe("DDIMScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise: sum 172.0067, mean 0.223967", () => {
    const sample = ddimLoop();
    expect(Math.abs(sumAbs(sample) - 172.0067)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.223967)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: sum 52.5302, mean 0.0684", () => {
    const sample = ddimLoop({ prediction_type: "v_prediction" });
    expect(Math.abs(sumAbs(sample) - 52.5302)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.0684)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_set_alpha_to_one: sum 149.8295, mean 0.1951", () => {
    const sample = ddimLoop({ set_alpha_to_one: true, beta_start: 0.01 });
    expect(Math.abs(sumAbs(sample) - 149.8295)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.1951)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_no_set_alpha_to_one: sum 149.0784, mean 0.1941", () => {
    const sample = ddimLoop({ set_alpha_to_one: false, beta_start: 0.01 });
    expect(Math.abs(sumAbs(sample) - 149.0784)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.1941)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 354.5418, mean 0.4616", () => {
    const scheduler = new DdimScheduler(base);
    scheduler.setTimesteps(10);
    const timesteps = scheduler.timesteps.slice(8);
    const noisy = scheduler.addNoise(dummySampleDeter(), dummyNoiseDeter(), timesteps[0] as number);
    let sample = noisy;
    for (const t of timesteps)
      sample = scheduler.step(dummyModel(sample, t), t, sample, { eta: 0 }).prevSample;
    expect(Math.abs(sumAbs(sample) - 354.5418)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.4616)).toBeLessThan(1e-3);
  });
  it("test_steps_offset: leading spacing with steps_offset 1 gives [801, 601, 401, 201, 1]", () => {
    const scheduler = new DdimScheduler({ ...base, steps_offset: 1 });
    scheduler.setTimesteps(5);
    expect(scheduler.timesteps).toEqual([801, 601, 401, 201, 1]);
  });
});
