import { describe, expect, it } from "vitest";
import { createGenerator } from "../../src/random/index.js";
import { createScheduler, SchedulerInputError } from "../../src/schedulers/index.js";
import { dummyModel, dummySampleDeter } from "./diffusers-fixtures.js";

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof SchedulerInputError) return err.field;
    throw err;
  }
  return undefined;
}

describe("scheduler_config.json validation", () => {
  const cases: [string, string, Record<string, unknown>, string][] = [
    ["DDIMScheduler", "unknown beta schedule", { beta_schedule: "cosine" }, "beta_schedule"],
    ["DDIMScheduler", "zero training steps", { num_train_timesteps: 0 }, "num_train_timesteps"],
    ["DDIMScheduler", "fractional offset", { steps_offset: 1.5 }, "steps_offset"],
    ["DDIMScheduler", "string boolean", { clip_sample: "yes" }, "clip_sample"],
    ["DDIMScheduler", "NaN beta", { beta_start: Number.NaN }, "beta_start"],
    ["DDIMScheduler", "short trained_betas", { trained_betas: [0.1, 0.2] }, "trained_betas"],
    ["DDIMScheduler", "bad timestep spacing", { timestep_spacing: "uniform" }, "timestep_spacing"],
    [
      "EulerDiscreteScheduler",
      "karras and exponential",
      { use_karras_sigmas: true, use_exponential_sigmas: true },
      "use_karras_sigmas",
    ],
    [
      "EulerDiscreteScheduler",
      "exponential and beta",
      { use_exponential_sigmas: true, use_beta_sigmas: true },
      "use_exponential_sigmas",
    ],
    ["EulerDiscreteScheduler", "bad interpolation", { interpolation_type: "cubic" }, "interpolation_type"],
    [
      "EulerAncestralDiscreteScheduler",
      "sample prediction",
      { prediction_type: "sample" },
      "prediction_type",
    ],
    [
      "DPMSolverMultistepScheduler",
      "zero final sigma without ++",
      { algorithm_type: "dpmsolver" },
      "final_sigmas_type",
    ],
    [
      "DPMSolverMultistepScheduler",
      "third-order SDE",
      { algorithm_type: "sde-dpmsolver++", solver_order: 3 },
      "solver_order",
    ],
    ["DPMSolverMultistepScheduler", "order 4", { solver_order: 4 }, "solver_order"],
    [
      "LCMScheduler",
      "distillation longer than training",
      { original_inference_steps: 2000 },
      "original_inference_steps",
    ],
  ];
  for (const [kind, what, config, field] of cases) {
    it(`${kind}: ${what} is rejected naming ${field}`, () => {
      expect(fieldOf(() => createScheduler(kind, config))).toBe(field);
    });
  }

  it("messages name the key and the allowed values", () => {
    expect(() => createScheduler("ddim", { beta_schedule: "cosine" })).toThrow(
      'beta_schedule: must be one of "linear", "scaled_linear", "squaredcos_cap_v2", got "cosine"',
    );
    expect(() => createScheduler("ddim", { num_train_timesteps: 0 })).toThrow(
      "num_train_timesteps: must be >= 1, got 0",
    );
  });

  it("treats null as the default and maps other schedulers' values as diffusers does", () => {
    const dpm = createScheduler("DPMSolverMultistepScheduler", {
      solver_type: "bh2",
      algorithm_type: "deis",
    });
    expect(dpm.config).toMatchObject({ solver_type: "midpoint", algorithm_type: "dpmsolver++" });
    expect(createScheduler("ddim", { steps_offset: null, trained_betas: null }).config.steps_offset).toBe(0);
    expect(createScheduler("euler", { prediction_type: "original_sample" }).config.prediction_type).toBe(
      "sample",
    );
  });

  it("rejects a config that is not an object", () => {
    expect(fieldOf(() => createScheduler("ddim", [] as never))).toBe("config");
  });
});

describe("call validation", () => {
  it("num_inference_steps must be a positive integer within the training steps", () => {
    const ddim = createScheduler("ddim");
    expect(fieldOf(() => ddim.setTimesteps(0))).toBe("num_inference_steps");
    expect(fieldOf(() => ddim.setTimesteps(2.5))).toBe("num_inference_steps");
    expect(fieldOf(() => ddim.setTimesteps(1001))).toBe("num_inference_steps");
  });

  it("step needs setTimesteps, matching lengths, a scheduled timestep and noise when stochastic", () => {
    const sample = dummySampleDeter();
    const euler = createScheduler("euler");
    expect(fieldOf(() => euler.step(sample, 999, sample))).toBe("num_inference_steps");
    euler.setTimesteps(10);
    expect(fieldOf(() => euler.step(sample.subarray(1), 999, sample))).toBe("model_output");
    expect(fieldOf(() => euler.step(sample, 998, sample))).toBe("timestep");
    const ancestral = createScheduler("euler_a");
    ancestral.setTimesteps(10);
    const t = ancestral.timesteps[0] as number;
    expect(() => ancestral.step(dummyModel(sample, t), t, sample)).toThrow(
      /generator: EulerAncestralDiscreteScheduler needs noise or a generator/,
    );
    expect(fieldOf(() => ancestral.step(sample, t, sample, { noise: new Float32Array(3) }))).toBe("noise");
    const ddim = createScheduler("ddim");
    ddim.setTimesteps(10);
    expect(fieldOf(() => ddim.step(sample, 900, sample, { eta: -1 }))).toBe("eta");
    expect(fieldOf(() => ddim.addNoise(sample, sample, 1000))).toBe("timestep");
    expect(fieldOf(() => ddim.setBeginIndex(10))).toBe("begin_index");
  });

  it("a finished schedule must be reset before stepping again", () => {
    const euler = createScheduler("euler");
    euler.setTimesteps(1);
    const sample = dummySampleDeter();
    const t = euler.timesteps[0] as number;
    euler.step(dummyModel(sample, t), t, sample);
    expect(fieldOf(() => euler.step(sample, t, sample))).toBe("timestep");
  });

  it("DDIM with eta > 0 draws from the generator exactly like explicit noise", () => {
    const sample = dummySampleDeter();
    const run = (options: object) => {
      const ddim = createScheduler("ddim");
      ddim.setTimesteps(10);
      return ddim.step(dummyModel(sample, 900), 900, sample, { eta: 0.5, ...options }).prevSample;
    };
    const seeded = run({ generator: createGenerator(3) });
    expect(seeded).toEqual(run({ noise: createGenerator(3).randn(sample.length) }));
    expect(seeded).not.toEqual(run({ eta: 0 }));
  });
});
