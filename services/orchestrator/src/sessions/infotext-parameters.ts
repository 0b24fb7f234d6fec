import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type {
  GenerationParameters,
  GenerationParametersSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { a1111Names, schedulerChoiceOf } from "@dmesh/spec";

/** An adapter file's name and A1111's short hash of it, as inference reports them. */
export interface NamedHash {
  readonly name: string;
  readonly shortHash: string;
}

/** The adapters a generation applied: LoRAs in request order, then the embeddings its prompts used. */
export interface AdaptersUsed {
  readonly loras: readonly NamedHash[];
  readonly embeddings: readonly NamedHash[];
}

/** `name: hash, name2: hash`, as A1111 joins `Lora hashes` and `TI hashes`. */
function hashList(list: readonly NamedHash[]): string {
  return list.map((h) => `${h.name}: ${h.shortHash}`).join(", ");
}

/**
 * What the encode step embeds in each image: the spec as AUTOMATIC1111's infotext fields.
 * `denoisingStrength` is given when the image came from an image-to-image pass. The prompt keeps its
 * `<lora:…>` tags, and the adapters used add `Lora hashes` and `TI hashes`, as A1111 writes them.
 */
export function infotextParameters(
  spec: GenerationSpec,
  seed: bigint,
  size: { width: number; height: number },
  model: string,
  denoisingStrength?: number,
  adapters?: AdaptersUsed,
): MessageInitShape<typeof GenerationParametersSchema> {
  const scheduler = spec.scheduler;
  // The names AUTOMATIC1111 writes (`packages/spec`'s scheduler table), so tools that read its images
  // recognise ours.
  const names = a1111Names(schedulerChoiceOf(scheduler));
  const extra: Record<string, string> = {};
  if (spec.params?.clipSkip) extra["Clip skip"] = String(spec.params.clipSkip + 1);
  if (denoisingStrength !== undefined) extra["Denoising strength"] = String(denoisingStrength);
  if (adapters?.loras.length) extra["Lora hashes"] = hashList(adapters.loras);
  if (adapters?.embeddings.length) extra["TI hashes"] = hashList(adapters.embeddings);
  return {
    prompt: spec.conditioning?.prompt ?? "",
    negativePrompt: spec.conditioning?.negativePrompt ?? "",
    steps: scheduler?.steps ?? 20,
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
