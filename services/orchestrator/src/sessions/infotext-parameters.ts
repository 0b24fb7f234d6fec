import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpec, SchedulerSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type {
  GenerationParameters,
  GenerationParametersSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { a1111Names, schedulerChoiceOf } from "@dmesh/spec";

/**
 * What the encode step embeds in each image: the spec as AUTOMATIC1111's infotext fields.
 * `denoisingStrength` is given when the image came from an image-to-image pass; `generated` are the fields
 * inference reported (a ControlNet unit's model hash is known only where the model is); `schedulerUsed` is
 * what the inference replica reported it ran (the model's own scheduler when the spec names none).
 */
export function infotextParameters(
  spec: GenerationSpec,
  seed: bigint,
  size: { width: number; height: number },
  model: string,
  denoisingStrength?: number,
  /** Fields the generation reported (its ControlNet units), after A1111's own, in order. */
  generated: readonly { key: string; value: string }[] = [],
  schedulerUsed?: SchedulerSpec,
): MessageInitShape<typeof GenerationParametersSchema> {
  const scheduler = schedulerUsed ?? spec.scheduler;
  // The names AUTOMATIC1111 writes (`packages/spec`'s scheduler table), so tools that read its images
  // recognise ours.
  const names = a1111Names(schedulerChoiceOf(scheduler));
  const extra: Record<string, string> = {};
  if (spec.params?.clipSkip) extra["Clip skip"] = String(spec.params.clipSkip + 1);
  if (denoisingStrength !== undefined) extra["Denoising strength"] = String(denoisingStrength);
  for (const { key, value } of generated) extra[key] = value;
  return {
    prompt: spec.conditioning?.prompt ?? "",
    negativePrompt: spec.conditioning?.negativePrompt ?? "",
    steps: spec.scheduler?.steps ?? 20,
    sampler: names.sampler,
    scheduleType: names.scheduleType,
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

/** "default" is no respacing: A1111 writes no schedule type for it. */
export type { GenerationParameters };
