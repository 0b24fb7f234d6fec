import { describe, expect, it } from "vitest";
import { createGenerator } from "../../src/random/index.js";
import { DpmSolverMultistepScheduler } from "../../src/schedulers/index.js";
import {
  BATCH_SIZE,
  dummyModel,
  dummyNoiseDeter,
  dummySampleDeter,
  fullLoop,
  meanAbs,
  sumAbs,
} from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_dpm_multi.py, DPMSolverMultistepSchedulerTest.get_scheduler_config
// (lambda_min_clipped -inf and variance_type None are this implementation's defaults).
const base = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  solver_order: 2,
  prediction_type: "epsilon",
  thresholding: false,
  sample_max_value: 1.0,
  algorithm_type: "dpmsolver++",
  solver_type: "midpoint",
  lower_order_final: false,
  euler_at_final: false,
  final_sigmas_type: "sigma_min",
};

function dpmLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new DpmSolverMultistepScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  return fullLoop(scheduler, dummySampleDeter(), { generator: createGenerator(0), batchSize: BATCH_SIZE });
}

describe("DPMSolverMultistepScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise / test_switch: mean 0.3301", () => {
    expect(Math.abs(meanAbs(dpmLoop()) - 0.3301)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: mean 0.2251", () => {
    expect(Math.abs(meanAbs(dpmLoop({ prediction_type: "v_prediction" })) - 0.2251)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_karras_and_v_prediction: mean 0.2096", () => {
    const sample = dpmLoop({ prediction_type: "v_prediction", use_karras_sigmas: true });
    expect(Math.abs(meanAbs(sample) - 0.2096)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_lu_and_v_prediction: mean 0.1554", () => {
    const sample = dpmLoop({ prediction_type: "v_prediction", use_lu_lambdas: true });
    expect(Math.abs(meanAbs(sample) - 0.1554)).toBeLessThan(1e-3);
  });
  it("test_full_loop_no_noise_thres: mean 1.1364", () => {
    const sample = dpmLoop({ thresholding: true, dynamic_thresholding_ratio: 0.87, sample_max_value: 0.5 });
    expect(Math.abs(meanAbs(sample) - 1.1364)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 318.4111, mean 0.4146", () => {
    const scheduler = new DpmSolverMultistepScheduler(base);
    scheduler.setTimesteps(10);
    const timesteps = scheduler.timesteps.slice(5);
    let sample = scheduler.addNoise(dummySampleDeter(), dummyNoiseDeter(), timesteps[0] as number);
    for (const t of timesteps) sample = scheduler.step(dummyModel(sample, t), t, sample).prevSample;
    expect(Math.abs(sumAbs(sample) - 318.4111)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.4146)).toBeLessThan(1e-3);
  });
  it("test_duplicated_timesteps: 1000 steps give 1000 timesteps", () => {
    const scheduler = new DpmSolverMultistepScheduler(base);
    scheduler.setTimesteps(1000);
    expect(scheduler.timesteps).toHaveLength(scheduler.numInferenceSteps as number);
  });
  it("test_solver_order_and_type: every algorithm, solver type, order and prediction type runs without NaN", () => {
    for (const algorithm_type of ["dpmsolver", "dpmsolver++", "sde-dpmsolver", "sde-dpmsolver++"]) {
      for (const solver_type of ["midpoint", "heun"]) {
        for (const solver_order of [1, 2, 3]) {
          if (algorithm_type.startsWith("sde-") && solver_order === 3) continue;
          for (const prediction_type of ["epsilon", "sample"]) {
            const config = { algorithm_type, solver_type, solver_order, prediction_type };
            expect(dpmLoop(config).some(Number.isNaN), JSON.stringify(config)).toBe(false);
          }
        }
      }
    }
  });
});
