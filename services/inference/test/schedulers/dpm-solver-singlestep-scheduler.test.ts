import { describe, expect, it } from "vitest";
import { createGenerator } from "../../src/random/index.js";
import { createScheduler, DpmSolverSinglestepScheduler } from "../../src/schedulers/index.js";
import { dummyNoiseDeter, dummySampleDeter, meanAbs, solverLoop, sumAbs } from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_dpm_single.py, DPMSolverSinglestepSchedulerTest.get_scheduler_config
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
  final_sigmas_type: "sigma_min",
};

function singleLoop(overrides: Record<string, unknown> = {}): Float32Array {
  const scheduler = new DpmSolverSinglestepScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  return solverLoop(scheduler, dummySampleDeter(), { generator: createGenerator(0) });
}

describe("DPMSolverSinglestepScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise: mean 0.2791", () => {
    expect(Math.abs(meanAbs(singleLoop()) - 0.2791)).toBeLessThan(1e-3);
  });
  it("test_switch: through DEIS, DPM multistep and UniPC configs and back, mean 0.2791", () => {
    let config: Readonly<Record<string, unknown>> = new DpmSolverSinglestepScheduler(base).config;
    for (const kind of ["DEISMultistepScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"]) {
      config = { ...base, ...createScheduler(kind, config).config };
    }
    const scheduler = createScheduler("DPMSolverSinglestepScheduler", config);
    scheduler.setTimesteps(10);
    expect(Math.abs(meanAbs(solverLoop(scheduler, dummySampleDeter())) - 0.2791)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_karras: mean 0.2248", () => {
    expect(Math.abs(meanAbs(singleLoop({ use_karras_sigmas: true })) - 0.2248)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: mean 0.1453", () => {
    expect(Math.abs(meanAbs(singleLoop({ prediction_type: "v_prediction" })) - 0.1453)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_karras_and_v_prediction: mean 0.0649", () => {
    const sample = singleLoop({ prediction_type: "v_prediction", use_karras_sigmas: true });
    expect(Math.abs(meanAbs(sample) - 0.0649)).toBeLessThan(1e-3);
  });
  it("test_full_uneven_loop: 50 steps entered at the fourth, mean 0.2574", () => {
    const scheduler = new DpmSolverSinglestepScheduler(base);
    scheduler.setTimesteps(50);
    const sample = solverLoop(scheduler, dummySampleDeter(), {}, scheduler.timesteps.slice(3));
    expect(Math.abs(meanAbs(sample) - 0.2574)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 269.2187, mean 0.3505", () => {
    const scheduler = new DpmSolverSinglestepScheduler(base);
    scheduler.setTimesteps(10);
    const timesteps = scheduler.timesteps.slice(5);
    let sample = scheduler.addNoise(dummySampleDeter(), dummyNoiseDeter(), timesteps[0] as number);
    sample = solverLoop(scheduler, sample, {}, timesteps);
    expect(Math.abs(sumAbs(sample) - 269.2187)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.3505)).toBeLessThan(1e-3);
  });
  it("test_solver_order_and_type: every algorithm, solver type, order and prediction type runs without NaN", () => {
    for (const algorithm_type of ["dpmsolver", "dpmsolver++", "sde-dpmsolver++"]) {
      for (const solver_type of ["midpoint", "heun"]) {
        for (const solver_order of [1, 2, 3]) {
          if (algorithm_type === "sde-dpmsolver++" && solver_order === 3) continue;
          for (const prediction_type of ["epsilon", "sample"]) {
            const config = { algorithm_type, solver_type, solver_order, prediction_type };
            expect(singleLoop(config).some(Number.isNaN), JSON.stringify(config)).toBe(false);
          }
        }
      }
    }
  });
});
