import { describe, expect, it } from "vitest";
import { createScheduler } from "../../src/schedulers/index.js";
import { dummySampleDeter, fullLoop, meanAbs, scaled } from "./diffusers-fixtures.js";

const timestepsOf = (kind: string, config: Record<string, unknown>, steps = 10) => {
  const scheduler = createScheduler(kind, config);
  scheduler.setTimesteps(steps);
  return scheduler.timesteps;
};

describe("timestep_spacing (arXiv:2305.08891 table 2) and steps_offset", () => {
  it("DDIM: linspace, leading (+ offset) and trailing", () => {
    expect(timestepsOf("ddim", { timestep_spacing: "linspace" })).toEqual([
      999, 888, 777, 666, 555, 444, 333, 222, 111, 0,
    ]);
    expect(timestepsOf("ddim", { timestep_spacing: "leading", steps_offset: 1 })).toEqual([
      901, 801, 701, 601, 501, 401, 301, 201, 101, 1,
    ]);
    expect(timestepsOf("ddim", { timestep_spacing: "trailing" })).toEqual([
      999, 899, 799, 699, 599, 499, 399, 299, 199, 99,
    ]);
    // 62.5 apart: numpy rounds 937.5 to 938 and 812.5 to 812 (half to even).
    expect(timestepsOf("ddim", { timestep_spacing: "trailing" }, 16).slice(0, 4)).toEqual([
      999, 937, 874, 811,
    ]);
  });

  it("DPM-Solver: n + 1 points with the last dropped, rounded half to even", () => {
    expect(timestepsOf("dpmpp_2m", {})).toEqual([999, 899, 799, 699, 599, 500, 400, 300, 200, 100]);
    expect(timestepsOf("dpmpp_2m", { timestep_spacing: "leading", steps_offset: 1 })).toEqual([
      901, 811, 721, 631, 541, 451, 361, 271, 181, 91,
    ]);
    expect(timestepsOf("dpmpp_2m", { timestep_spacing: "trailing" })).toEqual([
      999, 899, 799, 699, 599, 499, 399, 299, 199, 99,
    ]);
  });

  it("Euler: float32 linspace timesteps over 1100 training steps", () => {
    const timesteps = timestepsOf("euler", { num_train_timesteps: 1100 });
    expect(timesteps[0]).toBe(1099);
    expect(timesteps[1]).toBe(Math.fround((8 * 1099) / 9));
    expect(timesteps[9]).toBe(0);
  });
});

describe("sigma options", () => {
  it("Karras sigmas run from sigma_max to sigma_min with rho 7 and map back to fractional timesteps", () => {
    const euler = createScheduler("euler", { use_karras_sigmas: true, sigma_min: 0.1, sigma_max: 10 });
    euler.setTimesteps(5);
    const sigmas = Array.from(euler.sigmas as Float32Array);
    expect(sigmas[0]).toBeCloseTo(10, 5);
    expect(sigmas[4]).toBeCloseTo(0.1, 6);
    expect(sigmas[5]).toBe(0);
    const mid = (10 ** (1 / 7) + 0.5 * (0.1 ** (1 / 7) - 10 ** (1 / 7))) ** 7;
    expect(sigmas[2]).toBeCloseTo(mid, 5);
    expect(euler.timesteps.some((t) => !Number.isInteger(t))).toBe(true);
  });

  it("exponential sigmas are evenly spaced in log sigma", () => {
    const euler = createScheduler("euler", { use_exponential_sigmas: true });
    euler.setTimesteps(4);
    const [a = 0, b = 0, c = 0, d = 0] = Array.from((euler.sigmas as Float32Array).subarray(0, 4), Math.log);
    expect(b - a).toBeCloseTo(d - c, 4);
  });

  it("final_sigmas_type sigma_min ends on the smallest training sigma instead of 0", () => {
    const zero = createScheduler("euler", {});
    const min = createScheduler("euler", { final_sigmas_type: "sigma_min" });
    zero.setTimesteps(10);
    min.setTimesteps(10);
    expect(zero.sigmas?.[10]).toBe(0);
    expect(min.sigmas?.[10]).toBeCloseTo(Math.sqrt(0.0001 / (1 - 0.0001)), 5);
  });

  it("rescale_betas_zero_snr gives a terminal alpha_prod of 2^-24, so sigma_max is ~4096", () => {
    const euler = createScheduler("euler", { rescale_betas_zero_snr: true, timestep_spacing: "trailing" });
    euler.setTimesteps(10);
    expect(euler.initNoiseSigma).toBeCloseTo(4096, 0);
    // Zero terminal SNR needs v-prediction: epsilon cannot recover x0 where alpha_prod is 0.
    const ddim = createScheduler("ddim", {
      rescale_betas_zero_snr: true,
      timestep_spacing: "trailing",
      prediction_type: "v_prediction",
    });
    ddim.setTimesteps(10);
    const out = fullLoop(ddim, dummySampleDeter());
    expect(out.every(Number.isFinite)).toBe(true);
  });

  it("timestep_type continuous feeds 0.25 * log(sigma) to v-prediction models", () => {
    const euler = createScheduler("euler", { timestep_type: "continuous", prediction_type: "v_prediction" });
    euler.setTimesteps(4);
    const sigma0 = euler.sigmas?.[0] as number;
    expect(euler.timesteps[0]).toBe(Math.fround(0.25 * Math.fround(Math.log(sigma0))));
  });

  it("interpolation_type log_linear takes n + 1 sigmas evenly spaced in log from sigma_max", () => {
    const euler = createScheduler("euler", { interpolation_type: "log_linear" });
    euler.setTimesteps(4);
    const sigmas = euler.sigmas as Float32Array;
    expect(sigmas).toHaveLength(6);
    expect(Math.log(sigmas[0] as number) - Math.log(sigmas[1] as number)).toBeCloseTo(
      Math.log(sigmas[3] as number) - Math.log(sigmas[4] as number),
      4,
    );
  });

  it("lambda_min_clipped drops the low-SNR end of a cosine schedule", () => {
    const clipped = timestepsOf("dpmpp_2m", { beta_schedule: "squaredcos_cap_v2", lambda_min_clipped: -5.1 });
    const unclipped = timestepsOf("dpmpp_2m", { beta_schedule: "squaredcos_cap_v2" });
    expect(unclipped[0]).toBe(999);
    expect(clipped[0]).toBeLessThan(999);
  });

  it("euler_at_final and lower_order_final change only the last steps of DPM++ 2M", () => {
    const run = (config: Record<string, unknown>) => {
      const dpm = createScheduler("dpmpp_2m", {
        final_sigmas_type: "sigma_min",
        lower_order_final: false,
        ...config,
      });
      dpm.setTimesteps(10);
      return fullLoop(dpm, dummySampleDeter());
    };
    const plain = run({});
    expect(run({ euler_at_final: true })).not.toEqual(plain);
    expect(run({ lower_order_final: true })).not.toEqual(plain);
  });

  it("clip_sample_range and thresholding bound the predicted clean sample", () => {
    const ddim = createScheduler("ddim", { clip_sample: true, clip_sample_range: 0.25 });
    ddim.setTimesteps(10);
    const x = scaled(dummySampleDeter(), 8);
    const step = ddim.step(x, 900, x);
    expect(Math.max(...Array.from(step.predOriginalSample as Float32Array, Math.abs))).toBeLessThanOrEqual(
      0.25,
    );
    const lcm = createScheduler("lcm", { thresholding: true, sample_max_value: 2 });
    lcm.setTimesteps(1);
    const out = lcm.step(x, 999, x, { batchSize: 4 });
    expect(meanAbs(out.prevSample)).toBeGreaterThan(0);
  });
});
