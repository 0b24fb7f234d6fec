import type { AdapterRef, Conditioning } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { LIMITS } from "./limits.js";
import { checkAdapterName, extractLoraTags } from "./lora-tags.js";

/** One LoRA a request applies, from `adapters` or a `<lora:…>` tag in a prompt. */
export interface ResolvedAdapter {
  /** The file stem under the LoRA directory. */
  readonly name: string;
  readonly unetWeight: number;
  readonly textEncoderWeight: number;
  /** The request field that named it, for errors (`spec.adapters[0].name`, `spec.conditioning.prompt`). */
  readonly field: string;
}

/** The prompts with their tags cut out, and every LoRA the request names, in order. */
export interface PromptAdapters {
  readonly adapters: readonly ResolvedAdapter[];
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly prompt2: string;
  readonly negativePrompt2: string;
}

function checkWeight(field: string, value: number): number {
  if (!Number.isFinite(value) || Math.abs(value) > LIMITS.maxAdapterWeight) {
    throw new InvalidArgumentError(
      field,
      `must be a number in [-${LIMITS.maxAdapterWeight}, ${LIMITS.maxAdapterWeight}], got ${value}`,
    );
  }
  return value;
}

/**
 * The LoRA set of a request: `adapters` first, then the tags of prompt, negative prompt, prompt_2 and
 * negative_prompt_2 (each cut from its text; the infotext keeps the text as given). A name given twice,
 * in any two places, is INVALID_ARGUMENT: two weights for one file leave no single meaning.
 */
export function resolveAdapters(
  refs: readonly AdapterRef[],
  conditioning: Conditioning | undefined,
  prefix = "spec",
): PromptAdapters {
  const adapters: ResolvedAdapter[] = [];
  const seen = new Map<string, string>();
  const add = (adapter: ResolvedAdapter) => {
    const earlier = seen.get(adapter.name);
    if (earlier !== undefined) {
      throw new InvalidArgumentError(
        adapter.field,
        `names LoRA "${adapter.name}", which ${earlier} already names; give each LoRA once`,
      );
    }
    if (adapters.length === LIMITS.maxAdapters)
      throw new InvalidArgumentError(adapter.field, `a request applies at most ${LIMITS.maxAdapters} LoRAs`);
    seen.set(adapter.name, adapter.field);
    adapters.push(adapter);
  };
  refs.forEach((ref, i) => {
    const at = `${prefix}.adapters[${i}]`;
    const name = checkAdapterName(`${at}.name`, ref.name);
    // float32, as on the wire, whether or not the message was ever serialized.
    const unetWeight = Math.fround(checkWeight(`${at}.weight`, ref.weight ?? 1));
    const textEncoderWeight = Math.fround(
      checkWeight(`${at}.text_encoder_weight`, ref.textEncoderWeight ?? unetWeight),
    );
    add({ name, unetWeight, textEncoderWeight, field: `${at}.name` });
  });
  const cut = (text: string, name: string) => {
    const field = `${prefix}.conditioning.${name}`;
    const { text: rest, tags } = extractLoraTags(text, field);
    // As float32, like AdapterRef's weights: `<lora:x:0.7>` and `{name: "x", weight: 0.7}` are one set.
    for (const tag of tags) {
      const unetWeight = Math.fround(tag.unetWeight);
      add({ name: tag.name, unetWeight, textEncoderWeight: Math.fround(tag.textEncoderWeight), field });
    }
    return rest;
  };
  const prompt = cut(conditioning?.prompt ?? "", "prompt");
  const negativePrompt = cut(conditioning?.negativePrompt ?? "", "negative_prompt");
  const prompt2 = cut(conditioning?.prompt2 ?? "", "prompt_2");
  const negativePrompt2 = cut(conditioning?.negativePrompt2 ?? "", "negative_prompt_2");
  return { adapters, prompt, negativePrompt, prompt2, negativePrompt2 };
}

/**
 * A stable key of a LoRA set (names and weights, sorted by name): requests with equal keys apply the same
 * weights and may share UNet runs; different keys never do.
 */
export function adapterSetKey(
  adapters: readonly Pick<ResolvedAdapter, "name" | "unetWeight" | "textEncoderWeight">[],
): string {
  return [...adapters]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((a) => `${a.name}:${a.textEncoderWeight}:${a.unetWeight}`)
    .join(",");
}
