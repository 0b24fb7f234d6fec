import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpec, GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { SAMPLER_NAMES, schedulerFromCli, schedulerSpecFields } from "@dmesh/spec";

/** Flags shared by `generate` and `up` that become a GenerationSpec. */
export const SPEC_FLAGS = {
  negative: { type: "string" },
  seed: { type: "string" },
  steps: { type: "string" },
  width: { type: "string" },
  height: { type: "string" },
  guidance: { type: "string" },
  scheduler: { type: "string" },
  count: { type: "string" },
  model: { type: "string" },
  strength: { type: "string" },
} as const;

/** `--scheduler` values, from the scheduler table in `packages/spec`. */
export const SCHEDULER_FLAG_HELP = `--scheduler ${SAMPLER_NAMES.filter((s) => !s.readOnly)
  .map((s) => s.cli)
  .join("|")}, with _karras, _exponential or _beta where the sampler takes a sigma schedule`;

/** The SchedulerSpec fields a `--scheduler` value sets (e.g. dpmpp_2m_sde_karras). */
function schedulerFlag(value: string) {
  const choice = schedulerFromCli(value);
  if (!choice) {
    throw new Error(
      `--scheduler: unknown sampler "${value.slice(0, 40)}"; expected ${SCHEDULER_FLAG_HELP.slice(12)}`,
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
  const scheduler = flags.scheduler ? schedulerFlag(flags.scheduler) : {};
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
