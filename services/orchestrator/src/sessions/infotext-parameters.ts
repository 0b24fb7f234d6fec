import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpec, SchedulerSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type {
  GenerationParameters,
  GenerationParametersSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { a1111Names, schedulerChoiceOf } from "@dmesh/spec";

/** A float32 weight as a person wrote it (0.7, not 0.699999988). */
function weightText(weight: number): string {
  return String(Number(weight.toPrecision(6)));
}

/**
 * The prompt line A1111 would write: the prompt as given (its tags kept), then a `<lora:…>` tag for each
 * entry of `spec.adapters`, so that an A1111 reader of the image applies the same LoRAs.
 */
function promptLine(spec: GenerationSpec): string {
  const prompt = spec.conditioning?.prompt ?? "";
  const tags = spec.adapters.map((a) => {
    const unet = weightText(a.weight ?? 1);
    const te = a.textEncoderWeight === undefined ? undefined : weightText(a.textEncoderWeight);
    return te === undefined || te === unet ? `<lora:${a.name}:${unet}>` : `<lora:${a.name}:${te}:${unet}>`;
  });
  return tags.length === 0 ? prompt : `${prompt} ${tags.join(" ")}`;
}

/**
 * What the encode step embeds in each image: the spec as AUTOMATIC1111's infotext fields.
 * `denoisingStrength` is given when the image came from an image-to-image pass; `generated` are the fields
 * inference reported (a ControlNet unit's model hash, `Lora hashes`, `TI hashes`: known only where the files
 * are); `schedulerUsed` is what the inference replica reported it ran (the model's own scheduler when the
 * spec names none). The prompt keeps its `<lora:…>` tags and gains one per `spec.adapters` entry.
 */
export function infotextParameters(
  spec: GenerationSpec,
  seed: bigint,
  size: { width: number; height: number },
  model: string,
  denoisingStrength?: number,
  /** Fields the generation reported (ControlNet units, LoRA and embedding hashes), after A1111's own, in order. */
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
    prompt: promptLine(spec),
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
