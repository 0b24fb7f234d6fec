import {
  AlgorithmType,
  FinalSigmaType,
  SchedulerKind,
  type SchedulerSpec,
  SigmaSchedule,
  SolverType,
  TimestepSpacing,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";

/**
 * The one table of scheduler names: each family's SchedulerKind, diffusers class and the per-request options
 * it takes; the samplers (AUTOMATIC1111 names and CLI values) and schedule types that map onto them. The spec
 * validator, the CLI, the inference service and the infotext writers and readers all work from it.
 */

/** diffusers scheduler class names, as scheduler_config.json's `_class_name` spells them. */
export type SchedulerClassName =
  | "EulerDiscreteScheduler"
  | "EulerAncestralDiscreteScheduler"
  | "DDIMScheduler"
  | "DPMSolverMultistepScheduler"
  | "LCMScheduler"
  | "HeunDiscreteScheduler"
  | "UniPCMultistepScheduler"
  | "LMSDiscreteScheduler"
  | "PNDMScheduler"
  | "DPMSolverSinglestepScheduler"
  | "DEISMultistepScheduler"
  | "KDPM2DiscreteScheduler"
  | "KDPM2AncestralDiscreteScheduler"
  | "EDMEulerScheduler";

export type SigmaScheduleName = "default" | "karras" | "exponential" | "beta";
export type AlgorithmTypeName = "dpmsolver++" | "sde-dpmsolver++" | "dpmsolver" | "sde-dpmsolver";
export type SolverTypeName = "midpoint" | "heun" | "bh1" | "bh2";
export type FinalSigmaTypeName = "zero" | "sigma_min";
export type TimestepSpacingName = "leading" | "trailing" | "linspace";

export interface SchedulerFamily {
  readonly kind: SchedulerKind;
  readonly className: SchedulerClassName;
  /** What people call it (the sampler name written for it unless a sampler entry is more precise). */
  readonly label: string;
  /** Sigma schedules a request may choose ("default" = no respacing). */
  readonly sigmaSchedules: readonly SigmaScheduleName[];
  /** EDM Euler names its schedule in `sigma_schedule`; the others switch `use_<name>_sigmas`. */
  readonly sigmaScheduleKey: "use_sigmas" | "sigma_schedule";
  readonly algorithmTypes: readonly AlgorithmTypeName[];
  /** Inclusive range of `solver_order`, for the families that have one. */
  readonly solverOrders?: readonly [number, number];
  readonly solverTypes: readonly SolverTypeName[];
  readonly finalSigmaTypes: readonly FinalSigmaTypeName[];
  readonly timestepSpacing: boolean;
}

const RESPACED: readonly SigmaScheduleName[] = ["default", "karras", "exponential", "beta"];
const FINAL: readonly FinalSigmaTypeName[] = ["zero", "sigma_min"];
const NONE = [] as const;

function family(
  kind: SchedulerKind,
  className: SchedulerClassName,
  label: string,
  options: Partial<Omit<SchedulerFamily, "kind" | "className" | "label">> = {},
): SchedulerFamily {
  return {
    kind,
    className,
    label,
    sigmaSchedules: NONE,
    sigmaScheduleKey: "use_sigmas",
    algorithmTypes: NONE,
    solverTypes: NONE,
    finalSigmaTypes: NONE,
    timestepSpacing: true,
    ...options,
  };
}

export const SCHEDULER_FAMILIES: readonly SchedulerFamily[] = [
  family(SchedulerKind.EULER, "EulerDiscreteScheduler", "Euler", {
    sigmaSchedules: RESPACED,
    finalSigmaTypes: FINAL,
  }),
  family(SchedulerKind.EULER_ANCESTRAL, "EulerAncestralDiscreteScheduler", "Euler a"),
  family(SchedulerKind.DDIM, "DDIMScheduler", "DDIM"),
  family(SchedulerKind.DPMPP_2M, "DPMSolverMultistepScheduler", "DPM++ 2M", {
    sigmaSchedules: RESPACED,
    algorithmTypes: ["dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"],
    solverOrders: [1, 3],
    solverTypes: ["midpoint", "heun"],
    finalSigmaTypes: FINAL,
  }),
  family(SchedulerKind.LCM, "LCMScheduler", "LCM"),
  family(SchedulerKind.HEUN, "HeunDiscreteScheduler", "Heun", { sigmaSchedules: RESPACED }),
  family(SchedulerKind.UNIPC, "UniPCMultistepScheduler", "UniPC", {
    sigmaSchedules: RESPACED,
    solverOrders: [1, 3],
    solverTypes: ["bh1", "bh2"],
    finalSigmaTypes: FINAL,
  }),
  family(SchedulerKind.LMS, "LMSDiscreteScheduler", "LMS", { sigmaSchedules: RESPACED }),
  family(SchedulerKind.PNDM, "PNDMScheduler", "PLMS"),
  family(SchedulerKind.DPM_SOLVER_SINGLESTEP, "DPMSolverSinglestepScheduler", "DPM++ 2S", {
    sigmaSchedules: RESPACED,
    algorithmTypes: ["dpmsolver++", "sde-dpmsolver++", "dpmsolver"],
    solverOrders: [1, 3],
    solverTypes: ["midpoint", "heun"],
    finalSigmaTypes: FINAL,
    timestepSpacing: false,
  }),
  family(SchedulerKind.DEIS, "DEISMultistepScheduler", "DEIS", {
    sigmaSchedules: RESPACED,
    solverOrders: [1, 3],
  }),
  family(SchedulerKind.KDPM2, "KDPM2DiscreteScheduler", "DPM2", { sigmaSchedules: RESPACED }),
  family(SchedulerKind.KDPM2_ANCESTRAL, "KDPM2AncestralDiscreteScheduler", "DPM2 a", {
    sigmaSchedules: RESPACED,
  }),
  family(SchedulerKind.EDM_EULER, "EDMEulerScheduler", "EDM Euler", {
    sigmaSchedules: ["karras", "exponential"],
    sigmaScheduleKey: "sigma_schedule",
    finalSigmaTypes: FINAL,
    timestepSpacing: false,
  }),
];

/**
 * A named sampler: an AUTOMATIC1111 "Sampler" value and our CLI value for a family, with the algorithm type
 * that the name implies. diffusers' own table (docs/source/en/api/schedulers/overview.md) is followed where it
 * has an entry. The stochastic single-step solver is "DPM++ 2S SDE", our own name: A1111's "DPM++ SDE" is
 * another sampler (see UNSUPPORTED_SAMPLERS), and writing its name would claim images it does not make.
 */
export interface SamplerName {
  readonly a1111: string;
  readonly cli: string;
  readonly kind: SchedulerKind;
  readonly algorithmType?: AlgorithmTypeName;
  /** The order the name states ("2M", "2S"). */
  readonly solverOrder?: number;
  /** Other CLI spellings accepted. */
  readonly cliAliases?: readonly string[];
  /** A1111 names that map here only approximately: read, never written. */
  readonly readOnly?: boolean;
}

export const SAMPLER_NAMES: readonly SamplerName[] = [
  { a1111: "Euler", cli: "euler", kind: SchedulerKind.EULER },
  { a1111: "Euler a", cli: "euler_a", kind: SchedulerKind.EULER_ANCESTRAL, cliAliases: ["euler_ancestral"] },
  { a1111: "Heun", cli: "heun", kind: SchedulerKind.HEUN },
  { a1111: "DDIM", cli: "ddim", kind: SchedulerKind.DDIM },
  { a1111: "PLMS", cli: "plms", kind: SchedulerKind.PNDM, cliAliases: ["pndm"] },
  { a1111: "LMS", cli: "lms", kind: SchedulerKind.LMS },
  {
    a1111: "DPM++ 2M",
    cli: "dpmpp_2m",
    kind: SchedulerKind.DPMPP_2M,
    algorithmType: "dpmsolver++",
    solverOrder: 2,
  },
  {
    a1111: "DPM++ 2M SDE",
    cli: "dpmpp_2m_sde",
    kind: SchedulerKind.DPMPP_2M,
    algorithmType: "sde-dpmsolver++",
    solverOrder: 2,
  },
  {
    a1111: "DPM++ 2S",
    cli: "dpmpp_2s",
    kind: SchedulerKind.DPM_SOLVER_SINGLESTEP,
    algorithmType: "dpmsolver++",
    solverOrder: 2,
  },
  {
    a1111: "DPM++ 2S SDE",
    cli: "dpmpp_2s_sde",
    kind: SchedulerKind.DPM_SOLVER_SINGLESTEP,
    algorithmType: "sde-dpmsolver++",
    solverOrder: 2,
  },
  { a1111: "DPM2", cli: "dpm2", kind: SchedulerKind.KDPM2 },
  { a1111: "DPM2 a", cli: "dpm2_a", kind: SchedulerKind.KDPM2_ANCESTRAL },
  { a1111: "UniPC", cli: "unipc", kind: SchedulerKind.UNIPC },
  { a1111: "DEIS", cli: "deis", kind: SchedulerKind.DEIS },
  { a1111: "LCM", cli: "lcm", kind: SchedulerKind.LCM },
  { a1111: "EDM Euler", cli: "edm_euler", kind: SchedulerKind.EDM_EULER },
];

/** A sampler people name that the mesh refuses, with the reason and what to choose instead. */
export interface UnsupportedSampler {
  readonly a1111: string;
  readonly cli: string;
  /** The diffusers class, as a model's scheduler_config.json may name it, where there is one. */
  readonly className?: string;
  readonly why: string;
}

export const UNSUPPORTED_SAMPLERS: readonly UnsupportedSampler[] = [
  {
    a1111: "DPM++ SDE",
    cli: "dpmpp_sde",
    className: "DPMSolverSDEScheduler",
    // k-diffusion's sample_dpmpp_sde, diffusers' DPMSolverSDEScheduler: its noise is torchsde's BrownianTree
    // (a seeded binary tree of Brownian bridges over numpy SeedSequence seeds), which no sampler here
    // reproduces; diffusers itself seeds it from torch's global RNG unless noise_sampler_seed is set.
    why: "DPM++ SDE (diffusers' DPMSolverSDEScheduler) draws its noise from torchsde's BrownianTree, which this mesh does not reproduce; use DPM++ 2M SDE (dpmpp_2m_sde) or DPM++ 2S SDE (dpmpp_2s_sde)",
  },
  {
    a1111: "DPM++ 2S a",
    cli: "dpmpp_2s_a",
    // k-diffusion's sample_dpmpp_2s_ancestral: diffusers has no such scheduler ("very similar to
    // DPMSolverSinglestepScheduler", its table says), and the deterministic 2S under this name would make other
    // images than the name promises.
    why: "DPM++ 2S a (k-diffusion's ancestral single-step sampler) has no diffusers scheduler to follow exactly; use DPM++ 2S (dpmpp_2s) or Euler a (euler_a)",
  },
];

/** Why a sampler name (A1111's or the CLI's, with or without a schedule suffix) is refused; undefined when it is not. */
export function unsupportedSampler(name: string): string | undefined {
  const sampler = splitA1111Sampler(name).sampler.toLowerCase();
  const cli = name.trim().toLowerCase();
  return UNSUPPORTED_SAMPLERS.find(
    (u) =>
      u.a1111.toLowerCase() === sampler ||
      u.cli === cli ||
      CLI_SCHEDULE_SUFFIXES.some((suffix) => `${u.cli}_${suffix}` === cli),
  )?.why;
}

/** An A1111 "Schedule type" and what it sets. */
export interface ScheduleTypeName {
  readonly a1111: string;
  readonly sigmaSchedule?: Exclude<SigmaScheduleName, "default">;
  /** diffusers' equivalent of A1111's sgm_uniform / simple schedules. */
  readonly spacing?: TimestepSpacingName;
  readonly readOnly?: boolean;
}

export const SCHEDULE_TYPE_NAMES: readonly ScheduleTypeName[] = [
  { a1111: "Karras", sigmaSchedule: "karras" },
  { a1111: "Exponential", sigmaSchedule: "exponential" },
  { a1111: "Beta", sigmaSchedule: "beta" },
  { a1111: "SGM Uniform", spacing: "trailing" },
  { a1111: "Simple", spacing: "trailing", readOnly: true },
  { a1111: "Automatic", readOnly: true },
  { a1111: "Uniform", readOnly: true },
  { a1111: "Normal", readOnly: true },
];

/** The CLI's `--scheduler` suffixes: `dpmpp_2m_karras` is DPM++ 2M with Karras sigmas. */
const CLI_SCHEDULE_SUFFIXES: readonly Exclude<SigmaScheduleName, "default">[] = [
  "karras",
  "exponential",
  "beta",
];

export function schedulerFamily(kind: SchedulerKind): SchedulerFamily | undefined {
  return SCHEDULER_FAMILIES.find((f) => f.kind === kind);
}

export function familyByClassName(className: string): SchedulerFamily | undefined {
  return SCHEDULER_FAMILIES.find((f) => f.className === className);
}

/** A scheduler choice: the family, and the options a name implies. */
export interface SchedulerChoice {
  readonly kind: SchedulerKind;
  readonly algorithmType?: AlgorithmTypeName;
  readonly solverOrder?: number;
  readonly sigmaSchedule?: Exclude<SigmaScheduleName, "default">;
  readonly spacing?: TimestepSpacingName;
}

/** Every `--scheduler` value: each sampler's CLI name, alone or with a sigma-schedule suffix its family takes. */
export function cliSchedulerNames(): string[] {
  return [...cliTable().keys()];
}

/** A `--scheduler` value (case-insensitive), or undefined when it names nothing. */
export function schedulerFromCli(value: string): SchedulerChoice | undefined {
  return cliTable().get(value.trim().toLowerCase());
}

let cliNames: Map<string, SchedulerChoice> | undefined;
function cliTable(): Map<string, SchedulerChoice> {
  if (cliNames) return cliNames;
  cliNames = new Map();
  for (const sampler of SAMPLER_NAMES) {
    if (sampler.readOnly) continue;
    const family = schedulerFamily(sampler.kind) as SchedulerFamily;
    const base = {
      kind: sampler.kind,
      ...(sampler.algorithmType ? { algorithmType: sampler.algorithmType } : {}),
      ...(sampler.solverOrder ? { solverOrder: sampler.solverOrder } : {}),
    };
    for (const name of [sampler.cli, ...(sampler.cliAliases ?? [])]) {
      cliNames.set(name, base);
      for (const suffix of CLI_SCHEDULE_SUFFIXES) {
        if (family.sigmaSchedules.includes(suffix))
          cliNames.set(`${name}_${suffix}`, { ...base, sigmaSchedule: suffix });
      }
    }
  }
  return cliNames;
}

/**
 * AUTOMATIC1111's "Sampler" and "Schedule type" for a choice. An unset kind writes "Euler" (the SDXL
 * default), as the orchestrator does not know the model's own scheduler.
 */
export function a1111Names(choice: Partial<SchedulerChoice>): { sampler: string; scheduleType: string } {
  const kind = choice.kind ?? SchedulerKind.UNSPECIFIED;
  const samplers = SAMPLER_NAMES.filter((s) => s.kind === kind && !s.readOnly);
  const sampler =
    samplers.find((s) => choice.algorithmType !== undefined && s.algorithmType === choice.algorithmType) ??
    samplers[0];
  const scheduleType =
    SCHEDULE_TYPE_NAMES.find(
      (t) => !t.readOnly && choice.sigmaSchedule && t.sigmaSchedule === choice.sigmaSchedule,
    )?.a1111 ??
    SCHEDULE_TYPE_NAMES.find((t) => !t.readOnly && choice.spacing && t.spacing === choice.spacing)?.a1111 ??
    "";
  return { sampler: sampler?.a1111 ?? schedulerFamily(kind)?.label ?? "Euler", scheduleType };
}

/**
 * Reads A1111's `Sampler` and `Schedule type` back into a choice: `Sampler: DPM++ 2M, Schedule type: Karras`,
 * or the older single value `Sampler: DPM++ 2M Karras`. Undefined when the sampler is not one we run.
 */
export function schedulerFromA1111(sampler: string, scheduleType = ""): SchedulerChoice | undefined {
  const split = splitA1111Sampler(sampler, scheduleType);
  const named = SAMPLER_NAMES.find((s) => s.a1111.toLowerCase() === split.sampler.toLowerCase());
  if (!named) return undefined;
  const type = SCHEDULE_TYPE_NAMES.find((t) => t.a1111.toLowerCase() === split.scheduleType.toLowerCase());
  return {
    kind: named.kind,
    ...(named.algorithmType ? { algorithmType: named.algorithmType } : {}),
    ...(named.solverOrder ? { solverOrder: named.solverOrder } : {}),
    ...(type?.sigmaSchedule ? { sigmaSchedule: type.sigmaSchedule } : {}),
    ...(type?.spacing ? { spacing: type.spacing } : {}),
  };
}

/**
 * Splits the older `DPM++ 2M Karras` form into sampler and schedule type, as A1111 does when it reads an
 * infotext without "Schedule type"; a given schedule type is kept as it is.
 */
export function splitA1111Sampler(
  sampler: string,
  scheduleType = "",
): { sampler: string; scheduleType: string } {
  const name = sampler.trim();
  if (scheduleType.trim() !== "") return { sampler: name, scheduleType: scheduleType.trim() };
  for (const type of SCHEDULE_TYPE_NAMES) {
    const suffix = ` ${type.a1111}`;
    if (name.toLowerCase().endsWith(suffix.toLowerCase())) {
      return { sampler: name.slice(0, -suffix.length), scheduleType: type.a1111 };
    }
  }
  return { sampler: name, scheduleType: "" };
}

/** Proto enum values as the scheduler_config.json strings they set. */
export const SIGMA_SCHEDULE_NAMES: Readonly<Record<SigmaSchedule, SigmaScheduleName | undefined>> = {
  [SigmaSchedule.UNSPECIFIED]: undefined,
  [SigmaSchedule.DEFAULT]: "default",
  [SigmaSchedule.KARRAS]: "karras",
  [SigmaSchedule.EXPONENTIAL]: "exponential",
  [SigmaSchedule.BETA]: "beta",
};
export const ALGORITHM_TYPE_NAMES: Readonly<Record<AlgorithmType, AlgorithmTypeName | undefined>> = {
  [AlgorithmType.UNSPECIFIED]: undefined,
  [AlgorithmType.DPMSOLVER_PLUS_PLUS]: "dpmsolver++",
  [AlgorithmType.SDE_DPMSOLVER_PLUS_PLUS]: "sde-dpmsolver++",
  [AlgorithmType.DPMSOLVER]: "dpmsolver",
  [AlgorithmType.SDE_DPMSOLVER]: "sde-dpmsolver",
};
export const SOLVER_TYPE_NAMES: Readonly<Record<SolverType, SolverTypeName | undefined>> = {
  [SolverType.UNSPECIFIED]: undefined,
  [SolverType.MIDPOINT]: "midpoint",
  [SolverType.HEUN]: "heun",
  [SolverType.BH1]: "bh1",
  [SolverType.BH2]: "bh2",
};
export const FINAL_SIGMA_TYPE_NAMES: Readonly<Record<FinalSigmaType, FinalSigmaTypeName | undefined>> = {
  [FinalSigmaType.UNSPECIFIED]: undefined,
  [FinalSigmaType.ZERO]: "zero",
  [FinalSigmaType.SIGMA_MIN]: "sigma_min",
};
export const TIMESTEP_SPACING_NAMES: Readonly<Record<TimestepSpacing, TimestepSpacingName | undefined>> = {
  [TimestepSpacing.UNSPECIFIED]: undefined,
  [TimestepSpacing.LEADING]: "leading",
  [TimestepSpacing.TRAILING]: "trailing",
  [TimestepSpacing.LINSPACE]: "linspace",
};

/** Proto values for a choice's names (the reverse of the tables above), for building a SchedulerSpec. */
export function enumOf<E extends number, N extends string>(
  table: Readonly<Record<E, N | undefined>>,
  name: N,
): E {
  const entry = Object.entries(table).find(([, n]) => n === name);
  return Number(entry?.[0] ?? 0) as E;
}

/** The SchedulerSpec fields (proto enum values) that a choice sets, for building a request. */
export function schedulerSpecFields(choice: Partial<SchedulerChoice>): {
  kind?: SchedulerKind;
  algorithmType?: AlgorithmType;
  solverOrder?: number;
  sigmaSchedule?: SigmaSchedule;
  spacing?: TimestepSpacing;
} {
  return {
    ...(choice.kind !== undefined ? { kind: choice.kind } : {}),
    ...(choice.algorithmType ? { algorithmType: enumOf(ALGORITHM_TYPE_NAMES, choice.algorithmType) } : {}),
    ...(choice.solverOrder ? { solverOrder: choice.solverOrder } : {}),
    ...(choice.sigmaSchedule ? { sigmaSchedule: enumOf(SIGMA_SCHEDULE_NAMES, choice.sigmaSchedule) } : {}),
    ...(choice.spacing ? { spacing: enumOf(TIMESTEP_SPACING_NAMES, choice.spacing) } : {}),
  };
}

/**
 * The choice a SchedulerSpec makes (the reverse of `schedulerSpecFields`): `karras_sigmas` reads as the Karras
 * schedule, and "default" (no respacing) as no schedule named.
 */
export function schedulerChoiceOf(scheduler: SchedulerSpec | undefined): Partial<SchedulerChoice> {
  const sigmaSchedule = scheduler?.karrasSigmas
    ? "karras"
    : SIGMA_SCHEDULE_NAMES[scheduler?.sigmaSchedule ?? 0];
  const algorithmType = ALGORITHM_TYPE_NAMES[scheduler?.algorithmType ?? 0];
  const spacing = TIMESTEP_SPACING_NAMES[scheduler?.spacing ?? 0];
  return {
    kind: scheduler?.kind ?? SchedulerKind.UNSPECIFIED,
    ...(algorithmType ? { algorithmType } : {}),
    ...(scheduler?.solverOrder ? { solverOrder: scheduler.solverOrder } : {}),
    ...(sigmaSchedule && sigmaSchedule !== "default" ? { sigmaSchedule } : {}),
    ...(spacing ? { spacing } : {}),
  };
}

/**
 * The SchedulerSpec (proto enum values) of a scheduler as it runs: its diffusers class and its whole
 * configuration, defaults included. Only the options the family has are named, so that the A1111 names
 * (`a1111Names(schedulerChoiceOf(spec))`) say what ran, whether the request chose it or the model's
 * scheduler_config.json did.
 */
export function schedulerSpecOfConfig(
  className: string,
  config: Readonly<Record<string, unknown>>,
): {
  kind: SchedulerKind;
  algorithmType?: AlgorithmType;
  solverOrder?: number;
  solverType?: SolverType;
  sigmaSchedule?: SigmaSchedule;
  finalSigmaType?: FinalSigmaType;
  spacing?: TimestepSpacing;
} {
  const family = familyByClassName(className);
  if (!family) return { kind: SchedulerKind.UNSPECIFIED };
  const named = <N extends string>(value: unknown, allowed: readonly N[]): N | undefined =>
    allowed.includes(value as N) ? (value as N) : undefined;
  let sigma: SigmaScheduleName | undefined;
  if (family.sigmaScheduleKey === "sigma_schedule")
    sigma = named(config.sigma_schedule, family.sigmaSchedules);
  else if (family.sigmaSchedules.length > 0) {
    sigma = (["karras", "exponential", "beta"] as const).find((k) => config[`use_${k}_sigmas`] === true);
  }
  const algorithm = named(config.algorithm_type, family.algorithmTypes);
  const solver = named(config.solver_type, family.solverTypes);
  const final = named(config.final_sigmas_type, family.finalSigmaTypes);
  const spacing = family.timestepSpacing
    ? named(config.timestep_spacing, ["leading", "trailing", "linspace"] as const)
    : undefined;
  const order = Number(config.solver_order);
  return {
    kind: family.kind,
    ...(algorithm ? { algorithmType: enumOf(ALGORITHM_TYPE_NAMES, algorithm) } : {}),
    ...(family.solverOrders && Number.isInteger(order) ? { solverOrder: order } : {}),
    ...(solver ? { solverType: enumOf(SOLVER_TYPE_NAMES, solver) } : {}),
    ...(sigma ? { sigmaSchedule: enumOf(SIGMA_SCHEDULE_NAMES, sigma) } : {}),
    ...(final ? { finalSigmaType: enumOf(FINAL_SIGMA_TYPE_NAMES, final) } : {}),
    ...(spacing ? { spacing: enumOf(TIMESTEP_SPACING_NAMES, spacing) } : {}),
  };
}
