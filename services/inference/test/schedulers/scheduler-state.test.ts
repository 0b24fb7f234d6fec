import { describe, expect, it } from "vitest";
import { decodeSchedulerStates, encodeSchedulerStates } from "../../src/pipeline/checkpoint-codec.js";
import { createGenerator } from "../../src/random/index.js";
import {
  createScheduler,
  type Scheduler,
  SchedulerInputError,
  type SchedulerState,
  type StepOptions,
} from "../../src/schedulers/index.js";
import { dummyModel, dummySampleDeter, fullLoop, scaled } from "./diffusers-fixtures.js";

// [kind, scheduler_config overrides, step options]
const kinds: [string, Record<string, unknown>, StepOptions][] = [
  ["ddim", {}, { eta: 0.7 }],
  ["euler", {}, {}],
  ["euler_a", {}, {}],
  ["dpmpp_2m", {}, {}],
  ["dpmpp_2m_sde_karras", {}, {}],
  ["DPMSolverMultistepScheduler", { solver_order: 3, lower_order_final: false }, {}],
  ["lcm", {}, {}],
  ["heun_karras", {}, {}],
  ["lms_karras", {}, {}],
  ["plms", {}, {}],
  ["PNDMScheduler", { skip_prk_steps: false }, {}],
  ["dpmpp_2s", {}, {}],
  ["dpmpp_2s_sde_karras", {}, {}],
  ["DPMSolverSinglestepScheduler", { solver_order: 3 }, {}],
  ["unipc", {}, {}],
  ["UniPCMultistepScheduler", { solver_order: 3, solver_type: "bh1", disable_corrector: [2] }, {}],
  ["deis_beta", {}, {}],
  ["DEISMultistepScheduler", { solver_order: 3 }, {}],
  ["dpm2", {}, {}],
  ["dpm2_a_karras", {}, {}],
  ["edm_euler", {}, {}],
];

function start(kind: string, overrides: Record<string, unknown> = {}): Scheduler {
  const scheduler = createScheduler(kind, {
    beta_schedule: "scaled_linear",
    beta_start: 0.00085,
    beta_end: 0.012,
    ...overrides,
  });
  scheduler.setTimesteps(kind === "lcm" ? 6 : 12);
  return scheduler;
}

describe("getState / setState", () => {
  for (const [kind, overrides, stepOptions] of kinds) {
    it(`${kind} ${JSON.stringify(overrides)}: paused after 5 steps, resumed from its checkpoint bytes, is bit-identical`, () => {
      const reference = start(kind, overrides);
      const initial = scaled(dummySampleDeter(), reference.initNoiseSigma);
      const expected = fullLoop(reference, initial, { ...stepOptions, generator: createGenerator(7) });

      const first = start(kind, overrides);
      const generator = createGenerator(7);
      const pauseAt = kind === "lcm" ? 3 : 5;
      const paused = fullLoop(
        first,
        initial,
        { ...stepOptions, generator },
        first.timesteps.slice(0, pauseAt),
      );
      // What a checkpoint carries: the pipeline's JSON encoding of the state, Float32Arrays as bytes.
      const bytes = encodeSchedulerStates([first.getState()]);
      const saved = structuredClone({ generator: generator.getState(), paused });

      const second = start(kind, overrides);
      second.setState((decodeSchedulerStates(bytes) as SchedulerState[])[0] as SchedulerState);
      const resumedGenerator = createGenerator(7);
      resumedGenerator.setState(saved.generator);
      const remaining = second.timesteps.slice(pauseAt);
      const resumed = fullLoop(
        second,
        saved.paused,
        { ...stepOptions, generator: resumedGenerator },
        remaining,
      );
      expect(resumed).toEqual(expected);
    });
  }

  it("the state is a copy: stepping on does not change a saved state", () => {
    const dpm = start("dpmpp_2m");
    const sample = dummySampleDeter();
    const t = dpm.timesteps[0] as number;
    dpm.step(dummyModel(sample, t), t, sample);
    const state = dpm.getState();
    const outputs = (state.memory.modelOutputs as Float32Array[]).map((o) => o && Float32Array.from(o));
    const next = dpm.timesteps[1] as number;
    dpm.step(dummyModel(sample, next), next, sample);
    expect(state.memory.modelOutputs).toEqual(outputs);
    expect(state.stepIndex).toBe(1);
  });

  it("refuses a state from another kind or configuration", () => {
    const state = start("euler").getState();
    expect(() => start("euler_a").setState(state)).toThrow(SchedulerInputError);
    expect(() => start("euler_a").setState(state)).toThrow(/state: was saved from EulerDiscreteScheduler/);
    const other = createScheduler("euler", { beta_schedule: "linear" });
    expect(() => other.setState(state)).toThrow(
      /state: was saved from a scheduler with a different configuration/,
    );
    expect(() => start("euler").setState({ ...state, stepIndex: 99 })).toThrow(/stepIndex/);
    expect(() => start("dpmpp_2m").setState({ ...start("dpmpp_2m").getState(), memory: {} })).toThrow(
      /modelOutputs/,
    );
  });
});

describe("set_begin_index: img2img and base -> refiner handoff", () => {
  for (const kind of ["euler", "ddim", "lcm"]) {
    it(`${kind}: a second scheduler started with setBeginIndex continues the first one's schedule exactly`, () => {
      const full = start(kind);
      const initial = scaled(dummySampleDeter(), full.initNoiseSigma);
      const expected = fullLoop(full, initial, { generator: createGenerator(1) });

      const base = start(kind);
      const split = kind === "lcm" ? 2 : 8;
      const generator = createGenerator(1);
      const handed = fullLoop(base, initial, { generator }, base.timesteps.slice(0, split));
      const refiner = start(kind);
      refiner.setBeginIndex(split);
      const result = fullLoop(refiner, handed, { generator }, refiner.timesteps.slice(split));
      expect(result).toEqual(expected);
    });
  }

  it("addNoise before the first step uses the begin index's sigma (Euler img2img)", () => {
    const euler = start("euler");
    euler.setBeginIndex(4);
    const clean = dummySampleDeter();
    const noise = createGenerator(0).randn(clean.length);
    const noisy = euler.addNoise(clean, noise, euler.timesteps[4] as number);
    const sigma = euler.sigmas?.[4] as number;
    expect(noisy[10]).toBe(Math.fround((clean[10] as number) + Math.fround((noise[10] as number) * sigma)));
    expect(euler.stepIndex).toBeNull();
  });
});
