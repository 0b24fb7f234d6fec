import { describe, expect, it } from "vitest";
import { createGenerator } from "../../src/random/index.js";
import { LcmScheduler } from "../../src/schedulers/index.js";
import { dummySampleDeter, fullLoop, meanAbs, sumAbs } from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_lcm.py, LCMSchedulerTest.get_scheduler_config; full_loop seeds
// torch.manual_seed(0) and passes the generator to every step.
const base = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  prediction_type: "epsilon",
};

function lcmLoop(steps: number): Float32Array {
  const scheduler = new LcmScheduler(base);
  scheduler.setTimesteps(steps);
  return fullLoop(scheduler, dummySampleDeter(), { generator: createGenerator(0) });
}

describe("LCMScheduler against diffusers' expected values", () => {
  it("test_full_loop_onestep: sum 18.7097, mean 0.0244", () => {
    const sample = lcmLoop(1);
    expect(Math.abs(sumAbs(sample) - 18.7097)).toBeLessThan(1e-3);
    expect(Math.abs(meanAbs(sample) - 0.0244)).toBeLessThan(1e-3);
  });
  it("test_full_loop_multistep (torch.randn noise between steps): sum 197.7616, mean 0.2575", () => {
    const sample = lcmLoop(10);
    expect(Math.abs(sumAbs(sample) - 197.7616)).toBeLessThan(1e-3);
    expect(Math.abs(meanAbs(sample) - 0.2575)).toBeLessThan(1e-3);
  });
  it("takes evenly spaced picks from the 50-step distillation schedule", () => {
    const scheduler = new LcmScheduler(base);
    scheduler.setTimesteps(4);
    expect(scheduler.timesteps).toEqual([999, 759, 499, 259]);
    expect(() => scheduler.setTimesteps(51)).toThrow(/num_inference_steps: must be at most 50/);
  });
});
