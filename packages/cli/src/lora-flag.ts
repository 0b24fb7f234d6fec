import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AdapterRefSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";

/** `--lora NAME[:WEIGHT]`, repeatable: the spec's adapter list (prompts may also hold `<lora:…>` tags). */
export const LORA_FLAG = { lora: { type: "string", multiple: true } } as const;

export const LORA_FLAG_HELP =
  "--lora NAME[:WEIGHT] (repeatable) applies <MODELS_DIR>/loras/NAME.safetensors at WEIGHT (default 1, negative allowed); <lora:NAME:WEIGHT> in the prompt does the same";

export function adaptersFromFlag(
  values: readonly string[] | undefined,
): MessageInitShape<typeof AdapterRefSchema>[] {
  return (values ?? []).map((value) => {
    const at = value.lastIndexOf(":");
    const name = at < 0 ? value : value.slice(0, at);
    const raw = at < 0 ? undefined : value.slice(at + 1);
    const weight = raw === undefined ? undefined : Number(raw);
    if (name === "" || (weight !== undefined && (raw?.trim() === "" || !Number.isFinite(weight)))) {
      throw new Error(`--lora expects NAME or NAME:WEIGHT, got "${value.slice(0, 60)}"`);
    }
    return weight === undefined ? { name } : { name, weight };
  });
}
