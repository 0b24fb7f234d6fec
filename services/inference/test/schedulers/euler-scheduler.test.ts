import { describe, expect, it } from "vitest";
import { createGenerator } from "../../src/random/index.js";
import { EulerScheduler } from "../../src/schedulers/index.js";
import {
  dummyNoiseDeter,
  dummySampleDeter,
  fullLoop,
  meanAbs,
  scaled,
  sumAbs,
} from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_euler.py, EulerDiscreteSchedulerTest.get_scheduler_config
const base = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };

function eulerLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new EulerScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  const sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
  return fullLoop(scheduler, sample, { generator: createGenerator(0) });
}

describe("EulerDiscreteScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise / test_full_loop_device: sum 10.0807, mean 0.0131", () => {
    const sample = eulerLoop();
    expect(Math.abs(sumAbs(sample) - 10.0807)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.0131)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: sum 0.0002, mean 2.2676e-06", () => {
    const sample = eulerLoop({ prediction_type: "v_prediction" });
    expect(Math.abs(sumAbs(sample) - 0.0002)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 2.2676e-6)).toBeLessThan(1e-3);
  });
  it("test_full_loop_device_karras_sigmas: sum 124.52299499511719, mean 0.16213932633399963", () => {
    const sample = eulerLoop({ use_karras_sigmas: true });
    expect(Math.abs(sumAbs(sample) - 124.52299499511719)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.16213932633399963)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 57062.9297, mean 74.3007", () => {
    const scheduler = new EulerScheduler(base);
    scheduler.setTimesteps(10);
    let sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
    const timesteps = scheduler.timesteps.slice(8);
    sample = scheduler.addNoise(sample, dummyNoiseDeter(), timesteps[0] as number);
    sample = fullLoop(scheduler, sample, {}, timesteps);
    expect(Math.abs(sumAbs(sample) - 57062.9297)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 74.3007)).toBeLessThan(1e-3);
  });
});
