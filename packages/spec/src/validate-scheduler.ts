import { SchedulerKind, type SchedulerSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import {
  ALGORITHM_TYPE_NAMES,
  type AlgorithmTypeName,
  FINAL_SIGMA_TYPE_NAMES,
  type FinalSigmaTypeName,
  familyByClassName,
  type SchedulerClassName,
  type SchedulerFamily,
  SIGMA_SCHEDULE_NAMES,
  type SigmaScheduleName,
  SOLVER_TYPE_NAMES,
  type SolverTypeName,
  schedulerFamily,
  TIMESTEP_SPACING_NAMES,
  type TimestepSpacingName,
} from "./scheduler-table.js";

/** A validated SchedulerSpec; unset options fall back to the model's scheduler_config.json. */
export interface ResolvedScheduler {
  /** Unset = the model's scheduler_config.json class. */
  readonly scheduler: SchedulerClassName | undefined;
  readonly karrasSigmas: boolean | undefined;
  readonly timestepSpacing: TimestepSpacingName | undefined;
  readonly sigmaSchedule: SigmaScheduleName | undefined;
  readonly algorithmType: AlgorithmTypeName | undefined;
  readonly solverOrder: number | undefined;
  readonly solverType: SolverTypeName | undefined;
  readonly finalSigmaType: FinalSigmaTypeName | undefined;
}

/**
 * Checks a SchedulerSpec's family options against the scheduler table: an option the family does not have,
 * or a value outside its range, is an INVALID_ARGUMENT naming the field (`<prefix>.solver_order`). The
 * options past `spacing` need an explicit kind: the model's own scheduler is not known at the edge.
 */
export function validateSchedulerSpec(spec: SchedulerSpec | undefined, prefix: string): ResolvedScheduler {
  const f = (name: string) => `${prefix}.${name}`;
  const kind = spec?.kind ?? SchedulerKind.UNSPECIFIED;
  const family = kind === SchedulerKind.UNSPECIFIED ? undefined : schedulerFamily(kind);
  if (kind !== SchedulerKind.UNSPECIFIED && !family) {
    throw new InvalidArgumentError(f("kind"), `unknown scheduler ${kind}`);
  }
  const choose = <T>(table: Readonly<Record<number, T | undefined>>, value: number, field: string) => {
    if (!(value in table)) throw new InvalidArgumentError(f(field), `unknown value ${value}`);
    const chosen = table[value];
    if (chosen !== undefined && !family) {
      throw new InvalidArgumentError(
        f(field),
        `needs ${f("kind")}: the model's own scheduler is not known here`,
      );
    }
    return chosen;
  };
  const sigmaSchedule = choose(SIGMA_SCHEDULE_NAMES, spec?.sigmaSchedule ?? 0, "sigma_schedule");
  const algorithmType = choose(ALGORITHM_TYPE_NAMES, spec?.algorithmType ?? 0, "algorithm_type");
  const solverType = choose(SOLVER_TYPE_NAMES, spec?.solverType ?? 0, "solver_type");
  const finalSigmaType = choose(FINAL_SIGMA_TYPE_NAMES, spec?.finalSigmaType ?? 0, "final_sigma_type");
  const timestepSpacing = TIMESTEP_SPACING_NAMES[spec?.spacing ?? 0];
  if (spec && !(spec.spacing in TIMESTEP_SPACING_NAMES)) {
    throw new InvalidArgumentError(f("spacing"), `unknown value ${spec.spacing}`);
  }
  const solverOrder = spec?.solverOrder;
  if (solverOrder !== undefined && !family) {
    throw new InvalidArgumentError(
      f("solver_order"),
      `needs ${f("kind")}: the model's own scheduler is not known here`,
    );
  }
  const resolved: ResolvedScheduler = {
    scheduler: family?.className,
    karrasSigmas: spec?.karrasSigmas,
    timestepSpacing,
    sigmaSchedule,
    algorithmType,
    solverOrder,
    solverType,
    finalSigmaType,
  };
  if (family) checkSchedulerOptions(resolved, family, prefix);
  return resolved;
}

/**
 * Checks a scheduler's options against the family that will run them: the request's kind, or, where the request
 * names none, the model's own scheduler (`whose` then says so in the message: `model "sd15"'s PLMS`).
 */
export function checkSchedulerOptions(
  resolved: Omit<ResolvedScheduler, "scheduler">,
  family: SchedulerFamily,
  prefix: string,
  whose = "",
): void {
  const f = (name: string) => `${prefix}.${name}`;
  const name = `${whose}${family.label}`;
  const { sigmaSchedule, algorithmType, solverType, finalSigmaType, timestepSpacing, solverOrder } = resolved;
  const offer = <T>(value: T | undefined, allowed: readonly T[], field: string) => {
    if (value === undefined || allowed.includes(value)) return;
    const what =
      allowed.length === 0 ? "has none" : `takes ${allowed.map((v) => JSON.stringify(v)).join(", ")}`;
    throw new InvalidArgumentError(f(field), `${name} ${what}, got ${JSON.stringify(value)}`);
  };
  offer(sigmaSchedule, family.sigmaSchedules, "sigma_schedule");
  offer(algorithmType, family.algorithmTypes, "algorithm_type");
  offer(solverType, family.solverTypes, "solver_type");
  offer(finalSigmaType, family.finalSigmaTypes, "final_sigma_type");
  if (timestepSpacing !== undefined && !family.timestepSpacing) {
    throw new InvalidArgumentError(f("spacing"), `${name} has no timestep spacing`);
  }
  checkKarras(resolved.karrasSigmas, sigmaSchedule, family, name, f);
  checkOrder(solverOrder, algorithmType, family, f);
  if (algorithmType?.endsWith("++") === false && finalSigmaType === "zero") {
    throw new InvalidArgumentError(
      f("final_sigma_type"),
      `zero is not supported with algorithm_type ${algorithmType}; use sigma_min`,
    );
  }
}
function checkKarras(
  karras: boolean | undefined,
  sigmaSchedule: SigmaScheduleName | undefined,
  family: SchedulerFamily,
  name: string,
  f: (name: string) => string,
): void {
  if (karras === undefined) return;
  if (family.sigmaScheduleKey !== "use_sigmas" || !family.sigmaSchedules.includes("karras")) {
    throw new InvalidArgumentError(
      f("karras_sigmas"),
      `${name} has no use_karras_sigmas; see sigma_schedule`,
    );
  }
  if (sigmaSchedule !== undefined && (sigmaSchedule === "karras") !== karras) {
    throw new InvalidArgumentError(f("karras_sigmas"), `contradicts sigma_schedule ${sigmaSchedule}`);
  }
}

function checkOrder(
  order: number | undefined,
  algorithmType: AlgorithmTypeName | undefined,
  family: SchedulerFamily,
  f: (name: string) => string,
): void {
  if (order === undefined) return;
  const range = family.solverOrders;
  if (!range) throw new InvalidArgumentError(f("solver_order"), `${family.label} has no solver order`);
  const [min, max] = range;
  if (!Number.isInteger(order) || order < min || order > max) {
    throw new InvalidArgumentError(
      f("solver_order"),
      `must be in [${min}, ${max}] for ${family.label}, got ${order}`,
    );
  }
  if (
    order === 3 &&
    algorithmType?.startsWith("sde-") &&
    family.className === "DPMSolverMultistepScheduler"
  ) {
    throw new InvalidArgumentError(
      f("solver_order"),
      `the SDE variants of ${family.label} support orders 1 and 2`,
    );
  }
}

/**
 * The scheduler_config.json keys a resolved scheduler sets on top of the model's config. A noise-prediction
 * algorithm (dpmsolver) needs a sigma_min final sigma, which it gets unless the request chose one.
 */
export function schedulerConfigOverrides(
  resolved: ResolvedScheduler,
  className?: string,
): Record<string, unknown> {
  const family = familyByClassName(className ?? resolved.scheduler ?? "");
  const config: Record<string, unknown> = {};
  if (resolved.karrasSigmas !== undefined) config.use_karras_sigmas = resolved.karrasSigmas;
  if (resolved.timestepSpacing) config.timestep_spacing = resolved.timestepSpacing;
  const schedule = resolved.sigmaSchedule;
  if (schedule !== undefined) {
    if (family?.sigmaScheduleKey === "sigma_schedule") config.sigma_schedule = schedule;
    else {
      for (const kind of ["karras", "exponential", "beta"] as const)
        config[`use_${kind}_sigmas`] = schedule === kind;
    }
  }
  if (resolved.algorithmType) config.algorithm_type = resolved.algorithmType;
  if (resolved.solverOrder !== undefined) config.solver_order = resolved.solverOrder;
  if (resolved.solverType) config.solver_type = resolved.solverType;
  if (resolved.finalSigmaType) config.final_sigmas_type = resolved.finalSigmaType;
  else if (resolved.algorithmType === "dpmsolver" || resolved.algorithmType === "sde-dpmsolver") {
    config.final_sigmas_type = "sigma_min";
  }
  return config;
}
