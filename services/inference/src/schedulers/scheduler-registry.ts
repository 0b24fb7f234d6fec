import { DdimScheduler, ddimOptions } from "./ddim-scheduler.js";
import { DpmSolverMultistepScheduler, dpmSolverMultistepOptions } from "./dpm-solver-multistep-scheduler.js";
import { EulerAncestralScheduler, eulerAncestralOptions } from "./euler-ancestral-scheduler.js";
import { EulerScheduler, eulerOptions } from "./euler-scheduler.js";
import { HeunScheduler, heunOptions } from "./heun-scheduler.js";
import { LcmScheduler, lcmOptions } from "./lcm-scheduler.js";
import type { Scheduler, SchedulerKind } from "./scheduler.js";
import { type OptionSpecs, SchedulerInputError } from "./scheduler-config.js";

interface SchedulerEntry {
  readonly kind: SchedulerKind;
  readonly description: string;
  /** Whether a step draws fresh noise with the default configuration. */
  readonly stochastic: boolean;
  readonly options: OptionSpecs;
  readonly create: (config: Record<string, unknown>) => Scheduler;
  /** Short names, each with the configuration it implies on top of the caller's. */
  readonly aliases: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

const ENTRIES: readonly SchedulerEntry[] = [
  {
    kind: "DDIMScheduler",
    description: "DDIM (arXiv:2010.02502); deterministic at eta 0, stochastic for eta > 0.",
    stochastic: false,
    options: ddimOptions,
    create: (config) => new DdimScheduler(config),
    aliases: { ddim: {} },
  },
  {
    kind: "EulerDiscreteScheduler",
    description: "Euler (Karras et al. 2022, algorithm 2), the k-diffusion sampler.",
    stochastic: false,
    options: eulerOptions,
    create: (config) => new EulerScheduler(config),
    aliases: { euler: {}, euler_karras: { use_karras_sigmas: true } },
  },
  {
    kind: "EulerAncestralDiscreteScheduler",
    description: "Euler ancestral: an Euler step then fresh noise at every step.",
    stochastic: true,
    options: eulerAncestralOptions,
    create: (config) => new EulerAncestralScheduler(config),
    aliases: { euler_a: {}, euler_ancestral: {} },
  },
  {
    kind: "DPMSolverMultistepScheduler",
    description: "DPM-Solver++ multistep (DPM++ 2M by default; Karras sigmas and SDE variants by option).",
    stochastic: false,
    options: dpmSolverMultistepOptions,
    create: (config) => new DpmSolverMultistepScheduler(config),
    aliases: {
      dpmpp_2m: { algorithm_type: "dpmsolver++", solver_order: 2 },
      dpmpp_2m_karras: { algorithm_type: "dpmsolver++", solver_order: 2, use_karras_sigmas: true },
      dpmpp_2m_sde: { algorithm_type: "sde-dpmsolver++", solver_order: 2 },
      dpmpp_2m_sde_karras: { algorithm_type: "sde-dpmsolver++", solver_order: 2, use_karras_sigmas: true },
    },
  },
  {
    kind: "LCMScheduler",
    description: "Latent consistency model sampling (arXiv:2310.04378), for LCM-distilled models and LoRAs.",
    stochastic: true,
    options: lcmOptions,
    create: (config) => new LcmScheduler(config),
    aliases: { lcm: {} },
  },
  {
    kind: "HeunDiscreteScheduler",
    description:
      "Heun (Karras et al. 2022, algorithm 1): two model evaluations per step, timesteps repeated.",
    stochastic: false,
    options: heunOptions,
    create: (config) => new HeunScheduler(config),
    aliases: { heun: {}, heun_karras: { use_karras_sigmas: true } },
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
    const known = ENTRIES.flatMap((e) => [e.kind, ...Object.keys(e.aliases)]).join(", ");
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
    aliases: Object.keys(entry.aliases),
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
  for (const entry of ENTRIES) {
    if (entry.kind === name) return { entry, preset: {} };
    const preset = entry.aliases[name.toLowerCase()];
    if (preset) return { entry, preset };
  }
  return undefined;
}
