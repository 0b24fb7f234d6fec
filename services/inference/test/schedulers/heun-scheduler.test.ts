import { describe, expect, it } from "vitest";
import { HeunScheduler } from "../../src/schedulers/index.js";
import {
  dummyNoiseDeter,
  dummySampleDeter,
  fullLoop,
  meanAbs,
  scaled,
  sumAbs,
} from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_heun.py, HeunDiscreteSchedulerTest.get_scheduler_config
const base = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };

function heunLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new HeunScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  return fullLoop(scheduler, scaled(dummySampleDeter(), scheduler.initNoiseSigma));
}

describe("HeunDiscreteScheduler against diffusers' expected values", () => {
  it("repeats every timestep after the first and has order 2", () => {
    const scheduler = new HeunScheduler(base);
    scheduler.setTimesteps(3);
    const [t0, t1, t2] = [1099, Math.fround(549.5), 0];
    expect(scheduler.timesteps).toEqual([t0, t1, t1, t2, t2]);
    expect(scheduler.order).toBe(2);
  });
  it("test_full_loop_no_noise / test_full_loop_device (cpu): sum 0.1233, mean 0.0002", () => {
    const sample = heunLoop();
    expect(Math.abs(sumAbs(sample) - 0.1233)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.0002)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction (cpu): sum 4.6934e-07, mean 6.1112e-10", () => {
    const sample = heunLoop({ prediction_type: "v_prediction" });
    expect(Math.abs(sumAbs(sample) - 4.6934e-7)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 6.1112e-10)).toBeLessThan(1e-3);
  });
  it("test_full_loop_device_karras_sigmas: sum 0.00015, mean 1.9869554535034695e-07", () => {
    const sample = heunLoop({ use_karras_sigmas: true });
    expect(Math.abs(sumAbs(sample) - 0.00015)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 1.9869554535034695e-7)).toBeLessThan(1e-2);
  });
  it("test_full_loop_with_noise: sum 75074.8906, mean 97.7538", () => {
    const scheduler = new HeunScheduler(base);
    scheduler.setTimesteps(10);
    let sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
    const timesteps = scheduler.timesteps.slice(8 * scheduler.order);
    sample = scheduler.addNoise(sample, dummyNoiseDeter(), timesteps[0] as number);
    sample = fullLoop(scheduler, sample, {}, timesteps);
    expect(Math.abs(sumAbs(sample) - 75074.8906)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 97.7538)).toBeLessThan(1e-3);
  });
  it("accepts the exp beta schedule and clip_sample", () => {
    const sample = heunLoop({ beta_schedule: "exp", clip_sample: true, clip_sample_range: 2 });
    expect(sample.every(Number.isFinite)).toBe(true);
  });
});
