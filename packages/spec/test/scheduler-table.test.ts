import { readFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  AlgorithmType,
  FinalSigmaType,
  type GenerationSpec,
  GenerationSpecSchema,
  SchedulerKind,
  SigmaSchedule,
  SolverType,
  TimestepSpacing,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import {
  a1111Names,
  cliSchedulerNames,
  SAMPLER_NAMES,
  SCHEDULER_FAMILIES,
  schedulerChoiceOf,
  schedulerConfigOverrides,
  schedulerFromA1111,
  schedulerFromCli,
  schedulerSpecFields,
  schedulerSpecOfConfig,
  unsupportedSampler,
  validateGenerationSpec,
} from "../src/index.js";

function spec(scheduler: Record<string, unknown>): GenerationSpec {
  return create(GenerationSpecSchema, {
    conditioning: { prompt: "a cat" },
    size: { width: 64, height: 64 },
    scheduler,
  });
}

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err.field;
    throw err;
  }
  return undefined;
}

describe("the scheduler table", () => {
  it("has one family per SchedulerKind value, each with its own diffusers class", () => {
    const kinds = Object.values(SchedulerKind).filter(
      (k): k is SchedulerKind => typeof k === "number" && k !== SchedulerKind.UNSPECIFIED,
    );
    expect(SCHEDULER_FAMILIES.map((f) => f.kind).sort((a, b) => a - b)).toEqual(kinds);
    expect(new Set(SCHEDULER_FAMILIES.map((f) => f.className)).size).toBe(kinds.length);
  });

  it("writes and reads A1111 names both ways, for every sampler it writes", () => {
    for (const sampler of SAMPLER_NAMES.filter((s) => !s.readOnly)) {
      const choice = schedulerFromA1111(sampler.a1111, "Karras");
      expect(choice?.kind, sampler.a1111).toBe(sampler.kind);
      expect(a1111Names({ ...choice, sigmaSchedule: undefined }).sampler).toBe(sampler.a1111);
    }
    expect(a1111Names({ kind: SchedulerKind.DPMPP_2M, sigmaSchedule: "karras" })).toEqual({
      sampler: "DPM++ 2M",
      scheduleType: "Karras",
    });
    expect(a1111Names({ kind: SchedulerKind.DPMPP_2M, algorithmType: "sde-dpmsolver++" }).sampler).toBe(
      "DPM++ 2M SDE",
    );
    expect(a1111Names({ kind: SchedulerKind.EULER, spacing: "trailing" }).scheduleType).toBe("SGM Uniform");
    expect(a1111Names({}).sampler).toBe("Euler");
  });

  it("reads `Sampler: DPM++ 2M, Schedule type: Karras` and the older `DPM++ 2M Karras` alike", () => {
    const expected = {
      kind: SchedulerKind.DPMPP_2M,
      algorithmType: "dpmsolver++",
      solverOrder: 2,
      sigmaSchedule: "karras",
    };
    expect(schedulerFromA1111("DPM++ 2M", "Karras")).toEqual(expected);
    expect(schedulerFromA1111("DPM++ 2M Karras")).toEqual(expected);
    expect(schedulerFromA1111("DPM++ 2M SDE Exponential")).toMatchObject({
      algorithmType: "sde-dpmsolver++",
      sigmaSchedule: "exponential",
    });
    expect(schedulerFromA1111("Euler a", "Automatic")).toEqual({ kind: SchedulerKind.EULER_ANCESTRAL });
    expect(schedulerFromA1111("DPM2 a Karras")).toEqual({
      kind: SchedulerKind.KDPM2_ANCESTRAL,
      sigmaSchedule: "karras",
    });
    expect(schedulerFromA1111("PLMS")).toEqual({ kind: SchedulerKind.PNDM });
    expect(schedulerFromA1111("DPM adaptive")).toBeUndefined();
  });

  it("refuses A1111's DPM++ SDE (torchsde's Brownian tree) by every spelling, naming what runs instead", () => {
    for (const name of ["DPM++ SDE", "DPM++ SDE Karras", "dpmpp_sde", "DPMPP_SDE_KARRAS"]) {
      expect(unsupportedSampler(name), name).toMatch(/BrownianTree.*DPM\+\+ 2M SDE \(dpmpp_2m_sde\)/);
    }
    expect(schedulerFromA1111("DPM++ SDE")).toBeUndefined();
    expect(schedulerFromCli("dpmpp_sde")).toBeUndefined();
    expect(unsupportedSampler("DPM++ 2S a Karras")).toMatch(
      /no diffusers scheduler.*DPM\+\+ 2S \(dpmpp_2s\)/,
    );
    expect(schedulerFromA1111("DPM++ 2S a")).toBeUndefined();
    for (const name of ["DPM++ 2S SDE", "DPM++ 2M SDE Karras", "dpmpp_2s_sde", "Euler"])
      expect(unsupportedSampler(name), name).toBeUndefined();
    expect(
      a1111Names({ kind: SchedulerKind.DPM_SOLVER_SINGLESTEP, algorithmType: "sde-dpmsolver++" }).sampler,
    ).toBe("DPM++ 2S SDE");
  });

  it("names a scheduler as it runs from its class and whole config, only with the options its family has", () => {
    expect(
      schedulerSpecOfConfig("EulerDiscreteScheduler", {
        use_karras_sigmas: true,
        timestep_spacing: "trailing",
        algorithm_type: "dpmsolver++",
        solver_order: 2,
        final_sigmas_type: "zero",
      }),
    ).toEqual({
      kind: SchedulerKind.EULER,
      sigmaSchedule: SigmaSchedule.KARRAS,
      finalSigmaType: FinalSigmaType.ZERO,
      spacing: TimestepSpacing.TRAILING,
    });
    expect(
      schedulerSpecOfConfig("EDMEulerScheduler", { sigma_schedule: "karras", timestep_spacing: "x" }),
    ).toEqual({ kind: SchedulerKind.EDM_EULER, sigmaSchedule: SigmaSchedule.KARRAS });
    expect(
      schedulerSpecOfConfig("UniPCMultistepScheduler", {
        solver_order: 2,
        solver_type: "bh2",
        use_beta_sigmas: true,
      }),
    ).toEqual({
      kind: SchedulerKind.UNIPC,
      solverOrder: 2,
      solverType: SolverType.BH2,
      sigmaSchedule: SigmaSchedule.BETA,
    });
    expect(schedulerSpecOfConfig("DPMSolverSDEScheduler", {})).toEqual({ kind: SchedulerKind.UNSPECIFIED });
  });

  it("CLI values: each sampler, with a sigma-schedule suffix only where its family takes one", () => {
    const names = cliSchedulerNames();
    for (const sampler of SAMPLER_NAMES.filter((s) => !s.readOnly)) expect(names).toContain(sampler.cli);
    expect(schedulerFromCli("dpmpp_2m_sde_karras")).toEqual({
      kind: SchedulerKind.DPMPP_2M,
      algorithmType: "sde-dpmsolver++",
      solverOrder: 2,
      sigmaSchedule: "karras",
    });
    expect(schedulerFromCli("DPM2_A_BETA")).toEqual({
      kind: SchedulerKind.KDPM2_ANCESTRAL,
      sigmaSchedule: "beta",
    });
    expect(schedulerFromCli("edm_euler_exponential")?.sigmaSchedule).toBe("exponential");
    expect(schedulerFromCli("edm_euler_beta")).toBeUndefined();
    expect(schedulerFromCli("ddim_karras")).toBeUndefined();
    expect(schedulerFromCli("euler_ancestral")?.kind).toBe(SchedulerKind.EULER_ANCESTRAL);
  });

  it("turns a choice into SchedulerSpec fields and a SchedulerSpec back into the same choice", () => {
    for (const name of cliSchedulerNames()) {
      const choice = schedulerFromCli(name);
      if (!choice) throw new Error(name);
      const scheduler = spec({ ...schedulerSpecFields(choice), steps: 20 }).scheduler;
      expect(schedulerChoiceOf(scheduler), name).toEqual(choice);
    }
    expect(schedulerSpecFields({ kind: SchedulerKind.DPMPP_2M, algorithmType: "sde-dpmsolver++" })).toEqual({
      kind: SchedulerKind.DPMPP_2M,
      algorithmType: AlgorithmType.SDE_DPMSOLVER_PLUS_PLUS,
    });
    expect(schedulerSpecFields({ spacing: "trailing" })).toEqual({ spacing: TimestepSpacing.TRAILING });
    // The older boolean reads as the Karras schedule; "default" (no respacing) names no schedule.
    expect(schedulerChoiceOf(spec({ kind: SchedulerKind.EULER, karrasSigmas: true }).scheduler)).toEqual({
      kind: SchedulerKind.EULER,
      sigmaSchedule: "karras",
    });
    expect(schedulerChoiceOf(spec({ sigmaSchedule: SigmaSchedule.DEFAULT }).scheduler)).toEqual({
      kind: SchedulerKind.UNSPECIFIED,
    });
    expect(schedulerChoiceOf(undefined)).toEqual({ kind: SchedulerKind.UNSPECIFIED });
  });

  it("the README's scheduler list names every sampler and CLI value the table writes", () => {
    const readme = readFileSync(join(import.meta.dirname, "..", "..", "..", "README.md"), "utf8");
    const section = readme.split("<!-- schedulers:begin -->")[1]?.split("<!-- schedulers:end -->")[0] ?? "";
    for (const family of SCHEDULER_FAMILIES) expect(section, family.className).toContain(family.className);
    for (const sampler of SAMPLER_NAMES.filter((s) => !s.readOnly)) {
      expect(section, sampler.a1111).toContain(`"${sampler.a1111}"`);
      expect(section, sampler.cli).toContain(`\`${sampler.cli}\``);
    }
  });
});

describe("SchedulerSpec validation at the edge", () => {
  const rejected: [string, Record<string, unknown>, string][] = [
    [
      "solver order out of range",
      { kind: SchedulerKind.DPMPP_2M, solverOrder: 4 },
      "spec.scheduler.solver_order",
    ],
    [
      "solver order of a family without one",
      { kind: SchedulerKind.EULER, solverOrder: 2 },
      "spec.scheduler.solver_order",
    ],
    [
      "third-order SDE multistep",
      { kind: SchedulerKind.DPMPP_2M, algorithmType: AlgorithmType.SDE_DPMSOLVER_PLUS_PLUS, solverOrder: 3 },
      "spec.scheduler.solver_order",
    ],
    [
      "an algorithm type DDIM does not have",
      { kind: SchedulerKind.DDIM, algorithmType: AlgorithmType.DPMSOLVER_PLUS_PLUS },
      "spec.scheduler.algorithm_type",
    ],
    [
      "sde-dpmsolver on the single-step solver",
      { kind: SchedulerKind.DPM_SOLVER_SINGLESTEP, algorithmType: AlgorithmType.SDE_DPMSOLVER },
      "spec.scheduler.algorithm_type",
    ],
    [
      "bh1 on DPM++",
      { kind: SchedulerKind.DPMPP_2M, solverType: SolverType.BH1 },
      "spec.scheduler.solver_type",
    ],
    [
      "a sigma schedule for PNDM",
      { kind: SchedulerKind.PNDM, sigmaSchedule: SigmaSchedule.KARRAS },
      "spec.scheduler.sigma_schedule",
    ],
    [
      "beta sigmas for EDM Euler",
      { kind: SchedulerKind.EDM_EULER, sigmaSchedule: SigmaSchedule.BETA },
      "spec.scheduler.sigma_schedule",
    ],
    [
      "karras_sigmas for EDM Euler",
      { kind: SchedulerKind.EDM_EULER, karrasSigmas: true },
      "spec.scheduler.karras_sigmas",
    ],
    [
      "karras_sigmas for LCM",
      { kind: SchedulerKind.LCM, karrasSigmas: true },
      "spec.scheduler.karras_sigmas",
    ],
    [
      "karras_sigmas contradicting sigma_schedule",
      { kind: SchedulerKind.EULER, karrasSigmas: true, sigmaSchedule: SigmaSchedule.EXPONENTIAL },
      "spec.scheduler.karras_sigmas",
    ],
    [
      "spacing for EDM Euler",
      { kind: SchedulerKind.EDM_EULER, spacing: TimestepSpacing.TRAILING },
      "spec.scheduler.spacing",
    ],
    [
      "a final sigma type for Heun",
      { kind: SchedulerKind.HEUN, finalSigmaType: FinalSigmaType.ZERO },
      "spec.scheduler.final_sigma_type",
    ],
    [
      "a zero final sigma for noise-prediction DPM-Solver",
      {
        kind: SchedulerKind.DPMPP_2M,
        algorithmType: AlgorithmType.DPMSOLVER,
        finalSigmaType: FinalSigmaType.ZERO,
      },
      "spec.scheduler.final_sigma_type",
    ],
    ["a solver order without a kind", { solverOrder: 2 }, "spec.scheduler.solver_order"],
    [
      "a sigma schedule without a kind",
      { sigmaSchedule: SigmaSchedule.BETA },
      "spec.scheduler.sigma_schedule",
    ],
    ["an unknown kind", { kind: 99 }, "spec.scheduler.kind"],
    [
      "an unknown algorithm type",
      { kind: SchedulerKind.DPMPP_2M, algorithmType: 42 },
      "spec.scheduler.algorithm_type",
    ],
  ];
  for (const [what, scheduler, field] of rejected) {
    it(`${what} is INVALID_ARGUMENT naming ${field}`, () => {
      expect(fieldOf(() => validateGenerationSpec(spec(scheduler)))).toBe(field);
    });
  }

  it("every family's own options pass and become scheduler_config.json keys", () => {
    const dpm = validateGenerationSpec(
      spec({
        kind: SchedulerKind.DPMPP_2M,
        algorithmType: AlgorithmType.SDE_DPMSOLVER_PLUS_PLUS,
        solverOrder: 2,
        solverType: SolverType.HEUN,
        sigmaSchedule: SigmaSchedule.BETA,
        finalSigmaType: FinalSigmaType.SIGMA_MIN,
        spacing: TimestepSpacing.TRAILING,
      }),
    );
    expect(dpm.scheduler).toBe("DPMSolverMultistepScheduler");
    expect(schedulerConfigOverrides(dpm)).toEqual({
      use_karras_sigmas: false,
      use_exponential_sigmas: false,
      use_beta_sigmas: true,
      algorithm_type: "sde-dpmsolver++",
      solver_order: 2,
      solver_type: "heun",
      final_sigmas_type: "sigma_min",
      timestep_spacing: "trailing",
    });
    const unipc = validateGenerationSpec(
      spec({ kind: SchedulerKind.UNIPC, solverType: SolverType.BH1, solverOrder: 3 }),
    );
    expect(schedulerConfigOverrides(unipc)).toEqual({ solver_type: "bh1", solver_order: 3 });
    const edm = validateGenerationSpec(
      spec({ kind: SchedulerKind.EDM_EULER, sigmaSchedule: SigmaSchedule.EXPONENTIAL }),
    );
    expect(schedulerConfigOverrides(edm)).toEqual({ sigma_schedule: "exponential" });
    const lu = validateGenerationSpec(
      spec({ kind: SchedulerKind.DPMPP_2M, algorithmType: AlgorithmType.DPMSOLVER }),
    );
    expect(schedulerConfigOverrides(lu).final_sigmas_type).toBe("sigma_min");
    const legacy = validateGenerationSpec(spec({ karrasSigmas: true, spacing: TimestepSpacing.LEADING }));
    expect(legacy.scheduler).toBeUndefined();
    expect(schedulerConfigOverrides(legacy)).toEqual({
      use_karras_sigmas: true,
      timestep_spacing: "leading",
    });
  });
});
