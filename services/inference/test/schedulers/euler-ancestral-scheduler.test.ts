import { describe, expect, it } from "vitest";
import { createGenerator } from "../../src/random/index.js";
import { EulerAncestralScheduler } from "../../src/schedulers/index.js";
import { dummySampleDeter, fullLoop, meanAbs, scaled, sumAbs } from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_euler_ancestral.py, get_scheduler_config; the loops seed
// torch.manual_seed(0) and pass the generator to every step.
const base = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };

function ancestralLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new EulerAncestralScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  const sample = scaled(dummySampleDeter(), scheduler.initNoiseSigma);
  return fullLoop(scheduler, sample, { generator: createGenerator(0) });
}

describe("EulerAncestralDiscreteScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise / test_full_loop_device: sum 152.3192, mean 0.1983", () => {
    const sample = ancestralLoop();
    expect(Math.abs(sumAbs(sample) - 152.3192)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.1983)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: sum 108.4439, mean 0.1412", () => {
    const sample = ancestralLoop({ prediction_type: "v_prediction" });
    expect(Math.abs(sumAbs(sample) - 108.4439)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.1412)).toBeLessThan(1e-3);
  });
});
