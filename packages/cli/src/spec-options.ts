import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpec, GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import {
  SAMPLER_NAMES,
  SCHEDULE_TYPE_NAMES,
  schedulerFromA1111,
  schedulerFromCli,
  schedulerSpecFields,
  unsupportedSampler,
} from "@dmesh/spec";

/** Flags shared by `generate` and `up` that become a GenerationSpec. */
export const SPEC_FLAGS = {
  negative: { type: "string" },
  seed: { type: "string" },
  steps: { type: "string" },
  width: { type: "string" },
  height: { type: "string" },
  guidance: { type: "string" },
  scheduler: { type: "string" },
  sampler: { type: "string" },
  schedule: { type: "string" },
  count: { type: "string" },
  model: { type: "string" },
  strength: { type: "string" },
} as const;

/** `--scheduler` values, from the scheduler table in `packages/spec`. */
export const SCHEDULER_FLAG_HELP = `--scheduler ${SAMPLER_NAMES.filter((s) => !s.readOnly)
  .map((s) => s.cli)
  .join("|")}, with _karras, _exponential or _beta where the sampler takes a sigma schedule;
  or by AUTOMATIC1111's names: --sampler ${SAMPLER_NAMES.filter((s) => !s.readOnly)
    .map((s) => JSON.stringify(s.a1111))
    .join("|")} [--schedule ${SCHEDULE_TYPE_NAMES.filter((t) => !t.readOnly)
    .map((t) => JSON.stringify(t.a1111))
    .join("|")}]`;

/** The SchedulerSpec fields a `--scheduler` value sets (e.g. dpmpp_2m_sde_karras). */
function schedulerFlag(value: string) {
  const refused = unsupportedSampler(value);
  if (refused) throw new Error(`--scheduler: ${refused}`);
  const choice = schedulerFromCli(value);
  if (!choice) {
    throw new Error(
      `--scheduler: unknown sampler "${value.slice(0, 40)}"; expected ${SCHEDULER_FLAG_HELP.slice(12)}`,
    );
  }
  return schedulerSpecFields(choice);
}

/** The SchedulerSpec fields of `--sampler "DPM++ 2M" --schedule Karras` (A1111's names, as its infotext writes them). */
function samplerFlags(sampler: string | undefined, schedule: string | undefined) {
  if (sampler === undefined) {
    if (schedule !== undefined)
      throw new Error("--schedule needs --sampler (or use --scheduler NAME_karras)");
    return undefined;
  }
  const refused = unsupportedSampler(sampler);
  if (refused) throw new Error(`--sampler: ${refused}`);
  if (
    schedule !== undefined &&
    !SCHEDULE_TYPE_NAMES.some((t) => t.a1111.toLowerCase() === schedule.trim().toLowerCase())
  ) {
    throw new Error(
      `--schedule: unknown schedule type "${schedule.slice(0, 40)}"; expected ${SCHEDULE_TYPE_NAMES.map((t) => t.a1111).join(", ")}`,
    );
  }
  const choice = schedulerFromA1111(sampler, schedule);
  if (!choice) {
    throw new Error(
      `--sampler: unknown sampler "${sampler.slice(0, 40)}"; expected ${SAMPLER_NAMES.filter(
        (s) => !s.readOnly,
      )
        .map((s) => s.a1111)
        .join(", ")}`,
    );
  }
  return schedulerSpecFields(choice);
}

export function specFromFlags(
  prompt: string,
  flags: Partial<Record<keyof typeof SPEC_FLAGS, string>>,
  defaults: { width: number; height: number; steps: number },
): Exclude<MessageInitShape<typeof GenerationSpecSchema>, GenerationSpec> {
  const int = (name: string, raw: string | undefined, fallback?: number) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${raw}"`);
    return n;
  };
  if (flags.scheduler !== undefined && flags.sampler !== undefined)
    throw new Error("--scheduler and --sampler both name the sampler: give one");
  const scheduler = flags.scheduler
    ? schedulerFlag(flags.scheduler)
    : (samplerFlags(flags.sampler, flags.schedule) ?? {});
  const seed = flags.seed === undefined ? undefined : BigInt(flags.seed);
  return {
    conditioning: { prompt, negativePrompt: flags.negative ?? "" },
    size: {
      width: int("width", flags.width, defaults.width),
      height: int("height", flags.height, defaults.height),
    },
    scheduler: {
      steps: int("steps", flags.steps, defaults.steps),
      ...scheduler,
    },
    params: {
      ...(seed !== undefined ? { seed } : {}),
      ...(flags.guidance ? { guidanceScale: int("guidance", flags.guidance) } : {}),
      ...(flags.strength ? { strength: int("strength", flags.strength) } : {}),
    },
    output: { count: int("count", flags.count, 1) },
    models: { base: flags.model ?? "" },
  };
}
