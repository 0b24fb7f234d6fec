import { create } from "@bufbuild/protobuf";
import {
  AlgorithmType,
  FinalSigmaType,
  SchedulerKind,
  SchedulerSpecSchema,
  SigmaSchedule,
  SolverType,
  TimestepSpacing,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime";
import {
  a1111Names,
  type ResolvedSpec,
  SCHEDULER_FAMILIES,
  schedulerChoiceOf,
  validateSchedulerSpec,
} from "@dmesh/spec";
import { describe, expect, it } from "vitest";
import type { ModelDirectory } from "../../src/models/pipeline-directory.js";
import { checkRequestScheduler, modelScheduler, takeScheduler } from "../../src/pipeline/model-scheduler.js";
import { SchedulerPool } from "../../src/pipeline/scheduler-pool.js";
import { createGenerator } from "../../src/random/index.js";

// SD 1.5's and SDXL's scheduler_config.json (the keys that matter), and SD 2.1's v-prediction DDIM.
const SD15 = {
  _class_name: "PNDMScheduler",
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
};
const SDXL = {
  _class_name: "EulerDiscreteScheduler",
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  interpolation_type: "linear",
  steps_offset: 1,
  timestep_spacing: "leading",
  use_karras_sigmas: false,
};
const SD21 = { ...SD15, _class_name: "DDIMScheduler", prediction_type: "v_prediction", clip_sample: false };

const dir = (id: string, schedulerConfig: Record<string, unknown>) =>
  ({ id, schedulerConfig }) as unknown as ModelDirectory;

const resolvedSpec = (scheduler: Record<string, unknown>, steps = 4) =>
  ({
    ...validateSchedulerSpec(create(SchedulerSpecSchema, scheduler), "spec.scheduler"),
    steps,
  }) as ResolvedSpec;

/** Every value of each option, unset first, plus one out of range. */
const OPTIONS: Record<string, readonly unknown[]> = {
  sigmaSchedule: [0, ...Object.values(SigmaSchedule).filter((v) => typeof v === "number" && v > 0)],
  algorithmType: [0, ...Object.values(AlgorithmType).filter((v) => typeof v === "number" && v > 0)],
  solverType: [0, ...Object.values(SolverType).filter((v) => typeof v === "number" && v > 0)],
  finalSigmaType: [0, ...Object.values(FinalSigmaType).filter((v) => typeof v === "number" && v > 0)],
  spacing: [0, ...Object.values(TimestepSpacing).filter((v) => typeof v === "number" && v > 0)],
  solverOrder: [undefined, 1, 2, 3, 4],
  karrasSigmas: [undefined, true, false],
};

/** Each kind with every pair of options at every value (unset included): each single option and each pair. */
function* combinations(): Generator<Record<string, unknown>> {
  const names = Object.keys(OPTIONS);
  for (const family of SCHEDULER_FAMILIES) {
    for (const [i, a] of names.entries()) {
      for (const b of names.slice(i + 1)) {
        for (const va of OPTIONS[a] ?? []) {
          for (const vb of OPTIONS[b] ?? []) {
            const scheduler: Record<string, unknown> = { kind: family.kind };
            if (va !== undefined) scheduler[a] = va;
            if (vb !== undefined) scheduler[b] = vb;
            yield scheduler;
          }
        }
      }
    }
  }
}

describe("every SchedulerKind with every option pair: refused at the edge, or run", () => {
  it("an accepted request builds its scheduler and steps it to finite values; a refused one names its field", () => {
    const pool = new SchedulerPool(512, 1);
    const seen = new Set<string>();
    let accepted = 0;
    let refused = 0;
    for (const scheduler of combinations()) {
      const key = JSON.stringify(scheduler);
      if (seen.has(key)) continue;
      seen.add(key);
      let spec: ResolvedSpec;
      try {
        spec = resolvedSpec(scheduler);
      } catch (err) {
        expect(err, key).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).field, key).toMatch(/^spec\.scheduler\.[a-z_]+$/);
        refused++;
        continue;
      }
      accepted++;
      for (const model of [dir("sd15", SD15), dir("sd21", SD21)]) {
        const ran = checkRequestScheduler(pool, { base: model, refiner: undefined }, spec);
        expect(ran.scheduler.kind, key).toBe(scheduler.kind);
        const run = takeScheduler(pool, modelScheduler(model, spec), spec.steps);
        const generator = createGenerator(1);
        let sample: Float32Array = Float32Array.from({ length: 16 }, (_, i) => (i - 8) / 4);
        for (const t of run.timesteps) {
          const input = run.scaleModelInput(sample, t);
          const output = input.map((x, i) => x * 0.5 + (i % 3) * 0.1);
          sample = run.step(output, t, sample, { generator }).prevSample;
        }
        expect(
          sample.every((x) => Number.isFinite(x)),
          `${key} on ${model.id}`,
        ).toBe(true);
        pool.give([run]);
      }
    }
    // Both outcomes happen for every family (the counts guard the enumeration itself).
    expect(accepted).toBeGreaterThan(300);
    expect(refused).toBeGreaterThan(1000);
  });
});

describe("a request without a kind runs the model's own scheduler", () => {
  const pool = new SchedulerPool();

  it("reports the model's own scheduler as it runs: PLMS for SD 1.5, Euler for SDXL, DDIM for SD 2.1", () => {
    const ran = (config: Record<string, unknown>, scheduler: Record<string, unknown> = {}) =>
      checkRequestScheduler(pool, { base: dir("m", config), refiner: undefined }, resolvedSpec(scheduler))
        .scheduler;
    expect(ran(SD15)).toMatchObject({ kind: SchedulerKind.PNDM, spacing: TimestepSpacing.LEADING, steps: 4 });
    expect(a1111Names(schedulerChoiceOf(create(SchedulerSpecSchema, ran(SD15))))).toEqual({
      sampler: "PLMS",
      scheduleType: "",
    });
    expect(ran(SDXL).kind).toBe(SchedulerKind.EULER);
    expect(
      a1111Names(schedulerChoiceOf(create(SchedulerSpecSchema, ran(SDXL, { karrasSigmas: true })))),
    ).toEqual({ sampler: "Euler", scheduleType: "Karras" });
    expect(ran(SD21).kind).toBe(SchedulerKind.DDIM);
    // A model whose config is DPM++ SDE Karras-less multistep: the options it carries are reported.
    const dpm = ran({
      ...SDXL,
      _class_name: "DPMSolverMultistepScheduler",
      algorithm_type: "sde-dpmsolver++",
    });
    expect(dpm).toMatchObject({
      kind: SchedulerKind.DPMPP_2M,
      algorithmType: AlgorithmType.SDE_DPMSOLVER_PLUS_PLUS,
      solverOrder: 2,
    });
    expect(a1111Names(schedulerChoiceOf(create(SchedulerSpecSchema, dpm))).sampler).toBe("DPM++ 2M SDE");
  });

  it("an option the model's own family lacks is INVALID_ARGUMENT naming the field and the model", () => {
    const refuse = (config: Record<string, unknown>, scheduler: Record<string, unknown>) => {
      try {
        modelScheduler(dir("sd15", config), resolvedSpec(scheduler));
      } catch (err) {
        if (err instanceof InvalidArgumentError) return [err.field, err.message];
        throw err;
      }
      return undefined;
    };
    const [field, message] = refuse(SD15, { karrasSigmas: true }) ?? [];
    expect(field).toBe("spec.scheduler.karras_sigmas");
    expect(message).toContain(`model "sd15"'s own scheduler PLMS`);
    expect(refuse({ _class_name: "EDMEulerScheduler" }, { spacing: TimestepSpacing.TRAILING })?.[0]).toBe(
      "spec.scheduler.spacing",
    );
    expect(refuse(SDXL, { karrasSigmas: true, spacing: TimestepSpacing.TRAILING })).toBeUndefined();
  });

  it("a model shipping DPMSolverSDEScheduler runs Euler, says why, and reports Euler", () => {
    const model = dir("sde", { ...SD15, _class_name: "DPMSolverSDEScheduler" });
    const chosen = modelScheduler(model, resolvedSpec({}));
    expect(chosen.className).toBe("EulerDiscreteScheduler");
    expect(chosen.substituted).toMatch(/BrownianTree/);
    const ran = checkRequestScheduler(pool, { base: model, refiner: undefined }, resolvedSpec({}));
    expect([ran.scheduler.kind, ran.substituted]).toEqual([SchedulerKind.EULER, chosen.substituted]);
  });
});
