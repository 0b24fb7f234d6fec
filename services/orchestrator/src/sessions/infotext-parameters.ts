import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type {
  GenerationParameters,
  GenerationParametersSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";

// The sampler names AUTOMATIC1111 writes, so tools that read its images recognise ours.
const SAMPLER_NAMES: Record<SchedulerKind, string> = {
  [SchedulerKind.UNSPECIFIED]: "Euler",
  [SchedulerKind.EULER]: "Euler",
  [SchedulerKind.EULER_ANCESTRAL]: "Euler a",
  [SchedulerKind.DDIM]: "DDIM",
  [SchedulerKind.DPMPP_2M]: "DPM++ 2M",
  [SchedulerKind.LCM]: "LCM",
  [SchedulerKind.HEUN]: "Heun",
  [SchedulerKind.UNIPC]: "UniPC",
};

/**
 * What the encode step embeds in each image: the spec as AUTOMATIC1111's infotext fields.
 * `denoisingStrength` is given when the image came from an image-to-image pass.
 */
export function infotextParameters(
  spec: GenerationSpec,
  seed: bigint,
  size: { width: number; height: number },
  model: string,
  denoisingStrength?: number,
): MessageInitShape<typeof GenerationParametersSchema> {
  const scheduler = spec.scheduler;
  const extra: Record<string, string> = {};
  if (spec.params?.clipSkip) extra["Clip skip"] = String(spec.params.clipSkip + 1);
  if (denoisingStrength !== undefined) extra["Denoising strength"] = String(denoisingStrength);
  return {
    prompt: spec.conditioning?.prompt ?? "",
    negativePrompt: spec.conditioning?.negativePrompt ?? "",
    steps: scheduler?.steps ?? 20,
    sampler: SAMPLER_NAMES[scheduler?.kind ?? SchedulerKind.UNSPECIFIED],
    scheduleType: scheduler?.karrasSigmas ? "Karras" : "",
    cfgScale: spec.params?.guidanceScale ?? 7,
    seed,
    width: size.width,
    height: size.height,
    model,
    extra,
  } satisfies MessageInitShape<typeof GenerationParametersSchema> as MessageInitShape<
    typeof GenerationParametersSchema
  >;
}

export type { GenerationParameters };
