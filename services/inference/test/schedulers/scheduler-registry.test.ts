import { describe, expect, it } from "vitest";
import { createScheduler, listSchedulers, SchedulerInputError } from "../../src/schedulers/index.js";

// The scheduler/scheduler_config.json of stabilityai/stable-diffusion-xl-base-1.0.
const sdxlConfig = {
  _class_name: "EulerDiscreteScheduler",
  _diffusers_version: "0.19.0.dev0",
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  clip_sample: false,
  interpolation_type: "linear",
  num_train_timesteps: 1000,
  prediction_type: "epsilon",
  sample_max_value: 1.0,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: "leading",
  trained_betas: null,
  use_karras_sigmas: false,
};

describe("createScheduler", () => {
  it("builds every kind by diffusers class name from an SDXL scheduler_config.json, ignoring foreign keys", () => {
    for (const { kind } of listSchedulers()) {
      const scheduler = createScheduler(kind, sdxlConfig);
      expect(scheduler.kind).toBe(kind);
      expect(scheduler.config.num_train_timesteps).toBe(1000);
      if (kind !== "PNDMScheduler") expect(scheduler.config).not.toHaveProperty("skip_prk_steps");
    }
  });

  it("SDXL's Euler config: leading spacing with offset 1, init noise sigma sqrt(sigma_max^2 + 1)", () => {
    const euler = createScheduler("EulerDiscreteScheduler", sdxlConfig);
    euler.setTimesteps(10);
    expect(euler.timesteps).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    // diffusers: 14.614641 (sigma_max 14.61464) for this config.
    expect(euler.initNoiseSigma).toBeCloseTo(Math.sqrt((euler.sigmas?.[0] as number) ** 2 + 1), 5);
  });

  it("resolves aliases and applies the configuration they imply", () => {
    expect(createScheduler("euler_a").kind).toBe("EulerAncestralDiscreteScheduler");
    expect(createScheduler("ddim").kind).toBe("DDIMScheduler");
    expect(createScheduler("LCM").kind).toBe("LCMScheduler");
    const karras = createScheduler("dpmpp_2m_karras", sdxlConfig);
    expect(karras.kind).toBe("DPMSolverMultistepScheduler");
    expect(karras.config.use_karras_sigmas).toBe(true);
    expect(createScheduler("dpmpp_2m_sde").config.algorithm_type).toBe("sde-dpmsolver++");
    expect(createScheduler("plms", sdxlConfig).config.skip_prk_steps).toBe(true);
    expect(createScheduler("dpmpp_2s_sde").config.algorithm_type).toBe("sde-dpmsolver++");
    expect(createScheduler("dpm2_a_beta").config.use_beta_sigmas).toBe(true);
    expect(createScheduler("edm_euler_exponential").config.sigma_schedule).toBe("exponential");
    expect(createScheduler("unipc").kind).toBe("UniPCMultistepScheduler");
  });

  it("rejects an unknown kind naming the field", () => {
    const attempt = () => createScheduler("DPMSolverSDEScheduler");
    expect(attempt).toThrow(SchedulerInputError);
    expect(attempt).toThrow(
      /^kind: unknown scheduler "DPMSolverSDEScheduler"; expected one of DDIMScheduler, ddim/,
    );
  });
});

describe("listSchedulers", () => {
  it("describes each kind with aliases, stochasticity and option defaults", () => {
    const list = listSchedulers();
    expect(list.map((s) => s.kind)).toEqual([
      "DDIMScheduler",
      "EulerDiscreteScheduler",
      "EulerAncestralDiscreteScheduler",
      "DPMSolverMultistepScheduler",
      "LCMScheduler",
      "HeunDiscreteScheduler",
      "UniPCMultistepScheduler",
      "LMSDiscreteScheduler",
      "PNDMScheduler",
      "DPMSolverSinglestepScheduler",
      "DEISMultistepScheduler",
      "KDPM2DiscreteScheduler",
      "KDPM2AncestralDiscreteScheduler",
      "EDMEulerScheduler",
    ]);
    const dpm = list.find((s) => s.kind === "DPMSolverMultistepScheduler");
    expect(dpm?.aliases).toContain("dpmpp_2m");
    const order = dpm?.options.find((o) => o.key === "solver_order");
    expect(order).toMatchObject({ type: "integer", default: 2 });
    const algorithm = dpm?.options.find((o) => o.key === "algorithm_type");
    expect(algorithm?.values).toEqual(["dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"]);
    expect(list.find((s) => s.kind === "EulerAncestralDiscreteScheduler")?.stochastic).toBe(true);
    for (const info of list) {
      for (const option of info.options) expect(option.description.length).toBeGreaterThan(10);
    }
  });
});
