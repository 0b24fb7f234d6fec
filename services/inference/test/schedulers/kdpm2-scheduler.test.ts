import { describe, expect, it } from "vitest";
import { createGenerator } from "../../src/random/index.js";
import { Kdpm2AncestralScheduler, Kdpm2Scheduler, type Scheduler } from "../../src/schedulers/index.js";
import {
  dummyNoiseDeter,
  dummySampleDeter,
  fullLoop,
  meanAbs,
  scaled,
  sumAbs,
} from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_kdpm2_discrete.py and test_scheduler_kdpm2_ancestral.py,
// get_scheduler_config; the ancestral loops seed torch.manual_seed(0) and pass it to every step.
const base = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };

function loop(scheduler: Scheduler, seeded: boolean): Float32Array {
  scheduler.setTimesteps(10);
  const sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
  return fullLoop(scheduler, sample, seeded ? { generator: createGenerator(0) } : {});
}

function withNoise(scheduler: Scheduler, seeded: boolean): Float32Array {
  scheduler.setTimesteps(10);
  const timesteps = scheduler.timesteps.slice(8 * scheduler.order);
  let sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
  sample = scheduler.addNoise(sample, dummyNoiseDeter(), timesteps[0] as number);
  return fullLoop(scheduler, sample, seeded ? { generator: createGenerator(0) } : {}, timesteps);
}

describe("KDPM2DiscreteScheduler against diffusers' expected values", () => {
  it("interleaves the log-midpoint timesteps: 2n - 1 entries, order 2", () => {
    const scheduler = new Kdpm2Scheduler(base);
    scheduler.setTimesteps(10);
    expect(scheduler.timesteps).toHaveLength(19);
    expect(scheduler.order).toBe(2);
  });
  it("test_full_loop_no_noise (cpu): sum 20.4125, mean 0.0266", () => {
    const sample = loop(new Kdpm2Scheduler(base), false);
    expect(Math.abs(sumAbs(sample) - 20.4125)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.0266)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction (cpu): sum 4.6934e-07, mean 6.1112e-10", () => {
    const sample = loop(new Kdpm2Scheduler({ ...base, prediction_type: "v_prediction" }), false);
    expect(Math.abs(sumAbs(sample) - 4.6934e-7)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 6.1112e-10)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 70408.4062, mean 91.6776", () => {
    const sample = withNoise(new Kdpm2Scheduler(base), false);
    expect(Math.abs(sumAbs(sample) - 70408.4062)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 91.6776)).toBeLessThan(1e-3);
  });
});

describe("KDPM2AncestralDiscreteScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise: sum 13979.9433, mean 18.2030 (within 5e-3)", () => {
    const sample = loop(new Kdpm2AncestralScheduler(base), true);
    expect(Math.abs(sumAbs(sample) - 13979.9433)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 18.203)).toBeLessThan(5e-3);
  });
  it("test_full_loop_with_v_prediction: sum 331.8133, mean 0.4320", () => {
    const sample = loop(new Kdpm2AncestralScheduler({ ...base, prediction_type: "v_prediction" }), true);
    expect(Math.abs(sumAbs(sample) - 331.8133)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.432)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 93087.3437, mean 121.2074 (within 5e-3)", () => {
    const sample = withNoise(new Kdpm2AncestralScheduler(base), true);
    expect(Math.abs(sumAbs(sample) - 93087.3437)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 121.2074)).toBeLessThan(5e-3);
  });
  it("draws no noise on the first half of a step pair", () => {
    const scheduler = new Kdpm2AncestralScheduler(base);
    scheduler.setTimesteps(4);
    const t = scheduler.timesteps[0] as number;
    const sample = dummySampleDeter();
    // The first entry is a first-order half: no generator needed.
    expect(() => scheduler.step(sample, t, scheduler.scaleModelInput(sample, t))).not.toThrow();
  });
});
