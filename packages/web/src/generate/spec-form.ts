import { create, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import {
  type GenerationSpec,
  GenerationSpecSchema,
  SchedulerKind,
  TimestepSpacing,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InputError } from "../api/call-error.js";

/** What the spec inputs hold: numbers as typed, so a bad one is reported against its own field. */
export interface SpecValues {
  prompt: string;
  negativePrompt: string;
  model: string;
  sampler: SchedulerKind;
  schedule: Schedule;
  steps: string;
  width: string;
  height: string;
  /** Empty or -1 = random. */
  seed: string;
  cfg: string;
  count: string;
  strength: string;
  preview: boolean;
}

export type Schedule = "default" | "karras" | "leading" | "trailing" | "linspace";

export const DEFAULT_VALUES: SpecValues = {
  prompt: "",
  negativePrompt: "",
  model: "",
  sampler: SchedulerKind.UNSPECIFIED,
  schedule: "default",
  steps: "20",
  width: "512",
  height: "512",
  seed: "",
  cfg: "7",
  count: "1",
  strength: "0.8",
  preview: true,
};

/** Sampler names as AUTOMATIC1111 shows them. */
export const SAMPLERS: readonly [SchedulerKind, string][] = [
  [SchedulerKind.UNSPECIFIED, "Default"],
  [SchedulerKind.EULER, "Euler"],
  [SchedulerKind.EULER_ANCESTRAL, "Euler a"],
  [SchedulerKind.DPMPP_2M, "DPM++ 2M"],
  [SchedulerKind.DDIM, "DDIM"],
  [SchedulerKind.HEUN, "Heun"],
  [SchedulerKind.UNIPC, "UniPC"],
  [SchedulerKind.LCM, "LCM"],
];

export const SCHEDULES: readonly [Schedule, string][] = [
  ["default", "Default"],
  ["karras", "Karras"],
  ["leading", "Leading"],
  ["trailing", "Trailing"],
  ["linspace", "Linspace"],
];

const SPACINGS: Record<Exclude<Schedule, "default" | "karras">, TimestepSpacing> = {
  leading: TimestepSpacing.LEADING,
  trailing: TimestepSpacing.TRAILING,
  linspace: TimestepSpacing.LINSPACE,
};

/**
 * The request field each input edits, as the orchestrator names fields in its errors (`dmesh-field`).
 * An error about a field inside one of these (e.g. `spec.size`) lands on the first input under it.
 */
export const SPEC_FIELDS: Record<keyof SpecValues, string> = {
  prompt: "spec.conditioning.prompt",
  negativePrompt: "spec.conditioning.negative_prompt",
  model: "spec.models",
  sampler: "spec.scheduler.kind",
  schedule: "spec.scheduler",
  steps: "spec.scheduler.steps",
  width: "spec.size.width",
  height: "spec.size.height",
  seed: "spec.params.seed",
  cfg: "spec.params.guidance_scale",
  count: "spec.output.count",
  strength: "spec.params.strength",
  preview: "spec.preview",
};

function number(raw: string, field: string): number | undefined {
  if (raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new InputError(field, `must be a number, got "${raw.slice(0, 20)}"`);
  return n;
}

function seedOf(raw: string): bigint | undefined {
  const text = raw.trim();
  if (text === "" || text === "-1") return undefined;
  if (!/^\d{1,20}$/.test(text) || BigInt(text) >= 2n ** 64n)
    throw new InputError(
      SPEC_FIELDS.seed,
      `must be a whole number below 2^64, or -1 for random, got "${text.slice(0, 24)}"`,
    );
  return BigInt(text);
}

/** The GenerationSpec the inputs describe; empty inputs are left unset, for the server's defaults. */
export function specOf(v: SpecValues, withStrength: boolean): MessageInitShape<typeof GenerationSpecSchema> {
  const steps = number(v.steps, SPEC_FIELDS.steps);
  const cfg = number(v.cfg, SPEC_FIELDS.cfg);
  const strength = withStrength ? number(v.strength, SPEC_FIELDS.strength) : undefined;
  const seed = seedOf(v.seed);
  return {
    models: { base: v.model.trim() },
    conditioning: { prompt: v.prompt, negativePrompt: v.negativePrompt },
    scheduler: {
      kind: v.sampler,
      ...(steps !== undefined ? { steps } : {}),
      ...(v.schedule === "karras" ? { karrasSigmas: true } : {}),
      ...(v.schedule !== "default" && v.schedule !== "karras"
        ? { karrasSigmas: false, spacing: SPACINGS[v.schedule] }
        : {}),
    },
    params: {
      ...(cfg !== undefined ? { guidanceScale: cfg } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(strength !== undefined ? { strength } : {}),
    },
    size: {
      width: number(v.width, SPEC_FIELDS.width) ?? 0,
      height: number(v.height, SPEC_FIELDS.height) ?? 0,
    },
    output: { count: number(v.count, SPEC_FIELDS.count) ?? 0 },
    preview: { intervalSteps: v.preview ? 1 : 0 },
  };
}

/** The inputs for a spec a session ran with (its seed left for the caller to decide). */
export function valuesOf(spec: GenerationSpec, base: SpecValues): SpecValues {
  const spacing = Object.entries(SPACINGS).find(([, s]) => s === spec.scheduler?.spacing)?.[0] as
    | Schedule
    | undefined;
  return {
    ...base,
    prompt: spec.conditioning?.prompt ?? base.prompt,
    negativePrompt: spec.conditioning?.negativePrompt ?? base.negativePrompt,
    model: spec.models?.base ?? base.model,
    sampler: spec.scheduler?.kind ?? base.sampler,
    schedule: spec.scheduler?.karrasSigmas ? "karras" : (spacing ?? "default"),
    steps: spec.scheduler?.steps !== undefined ? String(spec.scheduler.steps) : base.steps,
    width: spec.size?.width ? String(spec.size.width) : base.width,
    height: spec.size?.height ? String(spec.size.height) : base.height,
    cfg:
      spec.params?.guidanceScale !== undefined
        ? String(Number(spec.params.guidanceScale.toFixed(3)))
        : base.cfg,
    count: spec.output?.count ? String(spec.output.count) : base.count,
  };
}

/** Which input an error's field belongs to: the input whose request field is the error's or contains it. */
export function inputFor<K extends string>(
  field: string | undefined,
  fields: Record<K, string>,
): K | undefined {
  if (!field) return undefined;
  const entries = Object.entries(fields) as [K, string][];
  const exact = entries.find(([, f]) => f === field);
  if (exact) return exact[0];
  const within = entries.find(([, f]) => field.startsWith(`${f}.`) || field.startsWith(`${f}[`));
  if (within) return within[0];
  return entries.find(([, f]) => f.startsWith(`${field}.`))?.[0];
}

/**
 * A batch axis value in proto JSON (what BatchAxis.values_json holds), made by the generated schema from a
 * typed spec fragment rather than written by hand: e.g. seed 5n -> "\"5\"", Euler -> "\"SCHEDULER_KIND_EULER\"".
 */
export function axisValueJson(path: string, fragment: MessageInitShape<typeof GenerationSpecSchema>): string {
  let json: unknown = toJson(GenerationSpecSchema, create(GenerationSpecSchema, fragment), {
    alwaysEmitImplicit: true,
  });
  for (const key of path.split(".")) json = (json as Record<string, unknown> | undefined)?.[key];
  if (json === undefined) throw new InputError(path, "has no value");
  return JSON.stringify(json);
}
