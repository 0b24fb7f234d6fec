import { describe, expect, it } from "vitest";
import { PndmScheduler } from "../../src/schedulers/index.js";
import { dummySampleDeter, meanAbs, solverLoop, sumAbs } from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_pndm.py, PNDMSchedulerTest.get_scheduler_config. Its full_loop
// runs step_prk over prk_timesteps then step_plms over plms_timesteps, which is what `step` over
// `timesteps` dispatches to.
const base = { num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };

function pndmLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new PndmScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  return solverLoop(scheduler, dummySampleDeter());
}

describe("PNDMScheduler against diffusers' expected values", () => {
  it("test_steps_offset: 12 Runge-Kutta entries, then PLMS", () => {
    const scheduler = new PndmScheduler({ ...base, steps_offset: 1 });
    scheduler.setTimesteps(10);
    expect(scheduler.timesteps).toEqual([
      901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1,
    ]);
  });
  it("skip_prk_steps (Stable Diffusion 1.x): the first PLMS step repeats its timestep", () => {
    const scheduler = new PndmScheduler({ ...base, steps_offset: 1, skip_prk_steps: true });
    scheduler.setTimesteps(10);
    expect(scheduler.timesteps).toEqual([901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  });
  it("test_full_loop_no_noise: sum 198.1318, mean 0.2580", () => {
    const sample = pndmLoop();
    expect(Math.abs(sumAbs(sample) - 198.1318)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.258)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: sum 67.3986, mean 0.0878", () => {
    const sample = pndmLoop({ prediction_type: "v_prediction" });
    expect(Math.abs(sumAbs(sample) - 67.3986)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.0878)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_set_alpha_to_one: sum 230.0399, mean 0.2995", () => {
    const sample = pndmLoop({ set_alpha_to_one: true, beta_start: 0.01 });
    expect(Math.abs(sumAbs(sample) - 230.0399)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.2995)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_no_set_alpha_to_one: sum 186.9482, mean 0.2434", () => {
    const sample = pndmLoop({ set_alpha_to_one: false, beta_start: 0.01 });
    expect(Math.abs(sumAbs(sample) - 186.9482)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.2434)).toBeLessThan(1e-3);
  });
  it("test_pow_of_3_inference_steps: 27 steps run their first steps", () => {
    const scheduler = new PndmScheduler(base);
    scheduler.setTimesteps(27);
    const sample = solverLoop(scheduler, dummySampleDeter(), {}, scheduler.timesteps.slice(0, 2));
    expect(sample.every(Number.isFinite)).toBe(true);
  });
});
