import { create, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { type GenerationSpec, GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import {
  a1111Names,
  SAMPLER_NAMES,
  SCHEDULE_TYPE_NAMES,
  schedulerChoiceOf,
  schedulerFamily,
  schedulerFromA1111,
  schedulerSpecFields,
} from "@dmesh/spec/scheduler-table";
import { InputError } from "../api/call-error.js";

/** What the spec inputs hold: numbers as typed, so a bad one is reported against its own field. */
export interface SpecValues {
  prompt: string;
  negativePrompt: string;
  model: string;
  /** AUTOMATIC1111's sampler name; "" = the model's own scheduler. */
  sampler: string;
  /** AUTOMATIC1111's schedule type; "" = the sampler's default. */
  schedule: string;
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

export const DEFAULT_VALUES: SpecValues = {
  prompt: "",
  negativePrompt: "",
  model: "",
  sampler: "",
  schedule: "",
  steps: "20",
  width: "512",
  height: "512",
  seed: "",
  cfg: "7",
  count: "1",
  strength: "0.8",
  preview: true,
};

/** The samplers a request can name, by their AUTOMATIC1111 names (`packages/spec`'s scheduler table). */
export const SAMPLERS: readonly string[] = SAMPLER_NAMES.filter((s) => !s.readOnly).map((s) => s.a1111);

/** The schedule types a sampler takes ("" = the model's scheduler takes spacing-only ones). */
export function schedulesFor(sampler: string): string[] {
  const kind = SAMPLER_NAMES.find((s) => s.a1111 === sampler)?.kind;
  const family = kind === undefined ? undefined : schedulerFamily(kind);
  return SCHEDULE_TYPE_NAMES.filter((t) => !t.readOnly)
    .filter((t) =>
      t.sigmaSchedule ? family?.sigmaSchedules.includes(t.sigmaSchedule) : (family?.timestepSpacing ?? true),
    )
    .map((t) => t.a1111);
}

function schedulerOf(v: SpecValues) {
  if (!v.sampler) {
    const spacing = SCHEDULE_TYPE_NAMES.find((t) => t.a1111 === v.schedule)?.spacing;
    return spacing ? schedulerSpecFields({ spacing }) : {};
  }
  const choice = schedulerFromA1111(v.sampler, v.schedule);
  if (!choice) throw new InputError(SPEC_FIELDS.sampler, `unknown sampler "${v.sampler.slice(0, 30)}"`);
  return schedulerSpecFields(choice);
}

/**
 * The request field each input edits, as the orchestrator names fields in its errors (`dmesh-field`).
 * An error about a field inside one of these (e.g. `spec.size`) lands on the first input under it.
 */
export const SPEC_FIELDS: Record<keyof SpecValues, string> = {
  prompt: "spec.conditioning.prompt",
  negativePrompt: "spec.conditioning.negative_prompt",
  model: "spec.models",
  // Its kind and the options the name implies (algorithm type, order).
  sampler: "spec.scheduler",
  schedule: "spec.scheduler.sigma_schedule",
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
    scheduler: { ...schedulerOf(v), ...(steps !== undefined ? { steps } : {}) },
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
  const choice = schedulerChoiceOf(spec.scheduler);
  const names = a1111Names(choice);
  return {
    ...base,
    prompt: spec.conditioning?.prompt ?? base.prompt,
    negativePrompt: spec.conditioning?.negativePrompt ?? base.negativePrompt,
    model: spec.models?.base ?? base.model,
    // An unset kind stays unset (a1111Names would write the SDXL default's name).
    sampler: choice.kind ? names.sampler : "",
    schedule: names.scheduleType,
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
