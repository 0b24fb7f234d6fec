import {
  cliSchedulerNames,
  familyByClassName,
  schedulerConfigOverrides,
  schedulerFamily,
  schedulerFromCli,
} from "@dmesh/spec";
import { DdimScheduler, ddimOptions } from "./ddim-scheduler.js";
import { DeisScheduler, deisOptions } from "./deis-scheduler.js";
import { DpmSolverMultistepScheduler, dpmSolverMultistepOptions } from "./dpm-solver-multistep-scheduler.js";
import {
  DpmSolverSinglestepScheduler,
  dpmSolverSinglestepOptions,
} from "./dpm-solver-singlestep-scheduler.js";
import { EdmEulerScheduler, edmEulerOptions } from "./edm-euler-scheduler.js";
import { EulerAncestralScheduler, eulerAncestralOptions } from "./euler-ancestral-scheduler.js";
import { EulerScheduler, eulerOptions } from "./euler-scheduler.js";
import { HeunScheduler, heunOptions } from "./heun-scheduler.js";
import { Kdpm2AncestralScheduler, kdpm2AncestralOptions } from "./kdpm2-ancestral-scheduler.js";
import { Kdpm2Scheduler, kdpm2Options } from "./kdpm2-scheduler.js";
import { LcmScheduler, lcmOptions } from "./lcm-scheduler.js";
import { LmsScheduler, lmsOptions } from "./lms-scheduler.js";
import { PndmScheduler, pndmOptions } from "./pndm-scheduler.js";
import type { Scheduler, SchedulerKind } from "./scheduler.js";
import { type OptionSpecs, SchedulerInputError } from "./scheduler-config.js";
import { UnipcScheduler, unipcOptions } from "./unipc-scheduler.js";

interface SchedulerEntry {
  readonly kind: SchedulerKind;
  readonly description: string;
  /** Whether a step draws fresh noise with the default configuration. */
  readonly stochastic: boolean;
  readonly options: OptionSpecs;
  readonly create: (config: Record<string, unknown>) => Scheduler;
}

const ENTRIES: readonly SchedulerEntry[] = [
  {
    kind: "DDIMScheduler",
    description: "DDIM (arXiv:2010.02502); deterministic at eta 0, stochastic for eta > 0.",
    stochastic: false,
    options: ddimOptions,
    create: (config) => new DdimScheduler(config),
  },
  {
    kind: "EulerDiscreteScheduler",
    description: "Euler (Karras et al. 2022, algorithm 2), the k-diffusion sampler.",
    stochastic: false,
    options: eulerOptions,
    create: (config) => new EulerScheduler(config),
  },
  {
    kind: "EulerAncestralDiscreteScheduler",
    description: "Euler ancestral: an Euler step then fresh noise at every step.",
    stochastic: true,
    options: eulerAncestralOptions,
    create: (config) => new EulerAncestralScheduler(config),
  },
  {
    kind: "DPMSolverMultistepScheduler",
    description: "DPM-Solver++ multistep (DPM++ 2M by default; Karras sigmas and SDE variants by option).",
    stochastic: false,
    options: dpmSolverMultistepOptions,
    create: (config) => new DpmSolverMultistepScheduler(config),
  },
  {
    kind: "LCMScheduler",
    description: "Latent consistency model sampling (arXiv:2310.04378), for LCM-distilled models and LoRAs.",
    stochastic: true,
    options: lcmOptions,
    create: (config) => new LcmScheduler(config),
  },
  {
    kind: "HeunDiscreteScheduler",
    description:
      "Heun (Karras et al. 2022, algorithm 1): two model evaluations per step, timesteps repeated.",
    stochastic: false,
    options: heunOptions,
    create: (config) => new HeunScheduler(config),
  },
  {
    kind: "UniPCMultistepScheduler",
    description:
      "UniPC (arXiv:2302.04867): a multistep predictor with a corrector; bh1 or bh2 by solver_type.",
    stochastic: false,
    options: unipcOptions,
    create: (config) => new UnipcScheduler(config),
  },
  {
    kind: "LMSDiscreteScheduler",
    description: "Linear multistep over the last four derivatives (k-diffusion's LMS).",
    stochastic: false,
    options: lmsOptions,
    create: (config) => new LmsScheduler(config),
  },
  {
    kind: "PNDMScheduler",
    description:
      "PNDM (arXiv:2202.09778): PLMS steps after a Runge-Kutta warm-up, or PLMS alone (skip_prk_steps).",
    stochastic: false,
    options: pndmOptions,
    create: (config) => new PndmScheduler(config),
  },
  {
    kind: "DPMSolverSinglestepScheduler",
    description: "DPM-Solver single-step (DPM++ 2S by default; DPM++ 2S SDE with sde-dpmsolver++).",
    stochastic: false,
    options: dpmSolverSinglestepOptions,
    create: (config) => new DpmSolverSinglestepScheduler(config),
  },
  {
    kind: "DEISMultistepScheduler",
    description: "DEIS (arXiv:2204.13902): an exponential integrator with log-rho polynomial extrapolation.",
    stochastic: false,
    options: deisOptions,
    create: (config) => new DeisScheduler(config),
  },
  {
    kind: "KDPM2DiscreteScheduler",
    description:
      "DPM2 (k-diffusion): a second-order step through the log-midpoint sigma; timesteps interleaved.",
    stochastic: false,
    options: kdpm2Options,
    create: (config) => new Kdpm2Scheduler(config),
  },
  {
    kind: "KDPM2AncestralDiscreteScheduler",
    description: "DPM2 ancestral: the DPM2 step to sigma_down, then fresh noise of sigma_up.",
    stochastic: true,
    options: kdpm2AncestralOptions,
    create: (config) => new Kdpm2AncestralScheduler(config),
  },
  {
    kind: "EDMEulerScheduler",
    description: "Euler with EDM preconditioning (Karras et al. 2022), for models trained as EDM.",
    stochastic: false,
    options: edmEulerOptions,
    create: (config) => new EdmEulerScheduler(config),
  },
];

/**
 * A scheduler by diffusers class name or short alias, configured from scheduler_config.json keys (unknown keys
 * are ignored, as a model's config may come from another scheduler class).
 */
export function createScheduler(kind: string, config: Readonly<Record<string, unknown>> = {}): Scheduler {
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new SchedulerInputError("config", "must be a JSON object of scheduler_config.json keys");
  }
  const match = resolve(kind);
  if (!match) {
    const known = ENTRIES.flatMap((e) => [e.kind, ...aliasesOf(e.kind)]).join(", ");
    throw new SchedulerInputError(
      "kind",
      `unknown scheduler ${JSON.stringify(kind)}; expected one of ${known}`,
    );
  }
  return match.entry.create({ ...config, ...match.preset });
}

export interface SchedulerOptionInfo {
  readonly key: string;
  readonly type: string;
  readonly description: string;
  readonly default: unknown;
  readonly values?: readonly string[];
}

export interface SchedulerInfo {
  readonly kind: SchedulerKind;
  readonly aliases: readonly string[];
  readonly description: string;
  readonly stochastic: boolean;
  readonly options: readonly SchedulerOptionInfo[];
}

/** Every scheduler kind with its aliases and scheduler_config.json options (for ListSchedulers). */
export function listSchedulers(): SchedulerInfo[] {
  return ENTRIES.map((entry) => ({
    kind: entry.kind,
    aliases: aliasesOf(entry.kind),
    description: entry.description,
    stochastic: entry.stochastic,
    options: Object.entries(entry.options).map(([key, spec]) => ({
      key,
      type: spec.type === "number?" ? "number|null" : spec.type === "number[]" ? "number[]|null" : spec.type,
      description: spec.description,
      default: spec.default,
      ...(spec.type === "enum" ? { values: spec.values } : {}),
    })),
  }));
}

function resolve(
  kind: string,
): { entry: SchedulerEntry; preset: Readonly<Record<string, unknown>> } | undefined {
  const name = kind.trim();
  const byClass = ENTRIES.find((e) => e.kind === name);
  if (byClass) return { entry: byClass, preset: {} };
  // Short names are the CLI's (`packages/spec`'s scheduler table): a sampler, optionally with a sigma schedule.
  const choice = schedulerFromCli(name);
  const className = choice && schedulerFamily(choice.kind)?.className;
  const entry = ENTRIES.find((e) => e.kind === className);
  if (!choice || !entry) return undefined;
  const preset = schedulerConfigOverrides(
    {
      scheduler: entry.kind,
      karrasSigmas: undefined,
      timestepSpacing: undefined,
      sigmaSchedule: choice.sigmaSchedule,
      algorithmType: choice.algorithmType,
      solverOrder: choice.solverOrder,
      solverType: undefined,
      finalSigmaType: undefined,
    },
    entry.kind,
  );
  return { entry, preset };
}

/** The short names that resolve to a class. */
function aliasesOf(kind: SchedulerKind): string[] {
  return cliSchedulerNames().filter((name) => {
    const choice = schedulerFromCli(name);
    return choice !== undefined && familyByClassName(kind)?.kind === choice.kind;
  });
}
