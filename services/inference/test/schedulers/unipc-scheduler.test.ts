import { describe, expect, it } from "vitest";
import { UnipcScheduler } from "../../src/schedulers/index.js";
import {
  dummyNoiseDeter,
  dummyNoiseDeter1d,
  dummySampleDeter,
  dummySampleDeter1d,
  meanAbs,
  solverLoop,
  sumAbs,
} from "./diffusers-fixtures.js";

// diffusers tests/schedulers/test_scheduler_unipc.py, UniPCMultistepSchedulerTest.get_scheduler_config
const base = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  solver_order: 2,
  solver_type: "bh2",
  final_sigmas_type: "sigma_min",
};

function unipcLoop(overrides: Record<string, unknown> = {}, sample = dummySampleDeter()): Float32Array {
  const scheduler = new UnipcScheduler({ ...base, ...overrides });
  scheduler.setTimesteps(10);
  return solverLoop(scheduler, sample);
}

function withNoise(sample: Float32Array, noise: Float32Array): Float32Array {
  const scheduler = new UnipcScheduler(base);
  scheduler.setTimesteps(10);
  const timesteps = scheduler.timesteps.slice(8);
  return solverLoop(scheduler, scheduler.addNoise(sample, noise, timesteps[0] as number), {}, timesteps);
}

describe("UniPCMultistepScheduler against diffusers' expected values", () => {
  it("test_full_loop_no_noise (bh2 with the corrector): mean 0.2464", () => {
    expect(Math.abs(meanAbs(unipcLoop()) - 0.2464)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_karras: mean 0.2925", () => {
    expect(Math.abs(meanAbs(unipcLoop({ use_karras_sigmas: true })) - 0.2925)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: mean 0.1014", () => {
    expect(Math.abs(meanAbs(unipcLoop({ prediction_type: "v_prediction" })) - 0.1014)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_karras_and_v_prediction: mean 0.1966", () => {
    const sample = unipcLoop({ prediction_type: "v_prediction", use_karras_sigmas: true });
    expect(Math.abs(meanAbs(sample) - 0.1966)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 315.5757, mean 0.4109", () => {
    const sample = withNoise(dummySampleDeter(), dummyNoiseDeter());
    expect(Math.abs(sumAbs(sample) - 315.5757)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.4109)).toBeLessThan(1e-3);
  });
  it("test_solver_order_and_type: bh1 and bh2, orders 1-3, epsilon and sample, no NaN", () => {
    for (const solver_type of ["bh1", "bh2"]) {
      for (const solver_order of [1, 2, 3]) {
        for (const prediction_type of ["epsilon", "sample"]) {
          const sample = unipcLoop({ solver_type, solver_order, prediction_type });
          expect(sample.some(Number.isNaN), `${solver_type} ${solver_order} ${prediction_type}`).toBe(false);
        }
      }
    }
  });
  it("bh1 and the disabled corrector change the result; predict_x0 false and zero-SNR betas run", () => {
    const reference = meanAbs(unipcLoop());
    expect(meanAbs(unipcLoop({ solver_type: "bh1" }))).not.toBe(reference);
    expect(meanAbs(unipcLoop({ disable_corrector: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }))).not.toBe(reference);
    expect(unipcLoop({ disable_corrector: [] })).toEqual(unipcLoop());
    expect(unipcLoop({ predict_x0: false }).every(Number.isFinite)).toBe(true);
    expect(unipcLoop({ rescale_betas_zero_snr: true }).every(Number.isFinite)).toBe(true);
  });
});

describe("UniPCMultistepScheduler1DTest against diffusers' expected values", () => {
  it("test_full_loop_no_noise: mean 0.2441", () => {
    expect(Math.abs(meanAbs(unipcLoop({}, dummySampleDeter1d())) - 0.2441)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_karras: mean 0.2898", () => {
    const sample = unipcLoop({ use_karras_sigmas: true }, dummySampleDeter1d());
    expect(Math.abs(meanAbs(sample) - 0.2898)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_v_prediction: mean 0.1014", () => {
    const sample = unipcLoop({ prediction_type: "v_prediction" }, dummySampleDeter1d());
    expect(Math.abs(meanAbs(sample) - 0.1014)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_karras_and_v_prediction: mean 0.1944", () => {
    const sample = unipcLoop(
      { prediction_type: "v_prediction", use_karras_sigmas: true },
      dummySampleDeter1d(),
    );
    expect(Math.abs(meanAbs(sample) - 0.1944)).toBeLessThan(1e-3);
  });
  it("test_full_loop_with_noise: sum 39.0870, mean 0.4072", () => {
    const sample = withNoise(dummySampleDeter1d(), dummyNoiseDeter1d());
    expect(Math.abs(sumAbs(sample) - 39.087)).toBeLessThan(1e-2);
    expect(Math.abs(meanAbs(sample) - 0.4072)).toBeLessThan(1e-3);
  });
});
