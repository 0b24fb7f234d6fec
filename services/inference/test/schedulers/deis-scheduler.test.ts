import { describe, expect, it } from "vitest";
import { DeisScheduler } from "../../src/schedulers/index.js";
import { dummyNoiseDeter, dummySampleDeter, meanAbs, solverLoop, sumAbs } from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_deis.py, DEISMultistepSchedulerTest.get_scheduler_config
const base = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  solver_order: 2,
};

function deisLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new DeisScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  return solverLoop(scheduler, dummySampleDeter());
}

describe("DEISMultistepScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise / test_switch: mean 0.23916", () => {
    expect(Math.abs(meanAbs(deisLoop()) - 0.23916)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: mean 0.091", () => {
    expect(Math.abs(meanAbs(deisLoop({ prediction_type: "v_prediction" })) - 0.091)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 315.3016, mean 0.41054", () => {
    const scheduler = new DeisScheduler(base);
    scheduler.setTimesteps(10);
    const timesteps = scheduler.timesteps.slice(8);
    let sample = scheduler.addNoise(dummySampleDeter(), dummyNoiseDeter(), timesteps[0] as number);
    sample = solverLoop(scheduler, sample, {}, timesteps);
    expect(Math.abs(sumAbs(sample) - 315.3016)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.41054)).toBeLessThan(1e-3);
  });
  it("test_solver_order_and_type: orders 1-3, epsilon and sample, no NaN", () => {
    for (const solver_order of [1, 2, 3]) {
      for (const prediction_type of ["epsilon", "sample"]) {
        const sample = deisLoop({ solver_order, prediction_type });
        expect(sample.some(Number.isNaN), `${solver_order} ${prediction_type}`).toBe(false);
      }
    }
  });
  it("takes DPM-Solver's algorithm and solver names as diffusers' from_config does", () => {
    const scheduler = new DeisScheduler({ ...base, algorithm_type: "dpmsolver++", solver_type: "midpoint" });
    expect(scheduler.config.algorithm_type).toBe("deis");
    expect(scheduler.config.solver_type).toBe("logrho");
  });
});
