import type { MessageInitShape } from "@bufbuild/protobuf";
import { type GenerationSpecSchema, SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";

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

const SCHEDULERS: Record<string, SchedulerKind> = {
  euler: SchedulerKind.EULER,
  euler_a: SchedulerKind.EULER_ANCESTRAL,
  ddim: SchedulerKind.DDIM,
  dpmpp_2m: SchedulerKind.DPMPP_2M,
  lcm: SchedulerKind.LCM,
  heun: SchedulerKind.HEUN,
};

export function specFromFlags(
  prompt: string,
  flags: Partial<Record<keyof typeof SPEC_FLAGS, string>>,
  defaults: { width: number; height: number; steps: number },
): MessageInitShape<typeof GenerationSpecSchema> {
  const int = (name: string, raw: string | undefined, fallback?: number) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${raw}"`);
    return n;
  };
  const scheduler = flags.scheduler ? SCHEDULERS[flags.scheduler] : undefined;
  if (flags.scheduler && scheduler === undefined) {
    throw new Error(`--scheduler must be one of ${Object.keys(SCHEDULERS).join(", ")}`);
  }
  const seed = flags.seed === undefined ? undefined : BigInt(flags.seed);
  return {
    conditioning: { prompt, negativePrompt: flags.negative ?? "" },
    size: {
      width: int("width", flags.width, defaults.width),
      height: int("height", flags.height, defaults.height),
    },
    scheduler: {
      steps: int("steps", flags.steps, defaults.steps),
      ...(scheduler !== undefined ? { kind: scheduler } : {}),
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
