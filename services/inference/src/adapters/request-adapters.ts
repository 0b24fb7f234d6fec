import type { ResolvedSpec } from "@dmesh/spec";
import type { LoadedModel } from "../models/loaded-model.js";
import type { ModelVariant } from "../models/model-registry.js";
import { PromptSyntaxError, tokenizeWeightedPrompt } from "../tokenizer/index.js";
import {
  type AdaptedModel,
  type AdapterSet,
  adapterSetCacheKey,
  type BuildOptions,
  buildAdaptedModel,
  type LoraUse,
} from "./adapted-model.js";
import type { AdapterDirectory, AdapterFileRef } from "./adapter-directory.js";
import { createEmbeddingMatcher } from "./embedding-matcher.js";

/** The request's LoRAs with their files: NOT_FOUND naming the first that has none, before any work. */
export function loraUses(spec: Pick<ResolvedSpec, "adapters">, directory: AdapterDirectory): LoraUse[] {
  return spec.adapters.map((a) => ({
    file: directory.lora(a.name, a.field),
    unetWeight: a.unetWeight,
    textEncoderWeight: a.textEncoderWeight,
    field: a.field,
  }));
}

type PromptTexts = Pick<
  ResolvedSpec,
  "prompt" | "negativePrompt" | "prompt2" | "negativePrompt2" | "plainPrompt"
>;

/**
 * The embeddings the request's prompts name, found as the prompt encoder will find them (the model's
 * first tokenizer, A1111's matching on tokens), in directory order. A prompt the encoder would refuse
 * names none here; the encoder reports it.
 */
export function embeddingsUsed(
  model: LoadedModel,
  spec: PromptTexts,
  directory: AdapterDirectory,
): AdapterFileRef[] {
  const files = directory.embeddings();
  const tokenizer = model.textEncoders[0]?.tokenizer;
  if (files.length === 0 || tokenizer === undefined) return [];
  const matcher = createEmbeddingMatcher(files.map((f) => ({ ids: tokenizer.encode(f.name), value: f })));
  const used = new Set<AdapterFileRef>();
  const lookup = {
    at(tokens: ArrayLike<number>, offset: number) {
      const match = matcher.at(tokens, offset);
      if (match === undefined) return undefined;
      used.add(match.value);
      return { value: [], length: match.length };
    },
  };
  for (const text of [spec.prompt, spec.negativePrompt, spec.prompt2, spec.negativePrompt2]) {
    const prepared = spec.plainPrompt ? text.replace(/([()[\]\\])/g, "\\$1") : text;
    try {
      tokenizeWeightedPrompt(tokenizer, prepared, { embeddings: lookup });
    } catch (err) {
      if (!(err instanceof PromptSyntaxError)) throw err;
    }
  }
  return files.filter((f) => used.has(f));
}

/** The registry variant that applies `set` (built once per model and set, then cached). */
export function adapterVariant(set: AdapterSet, options: Omit<BuildOptions, "settings">): ModelVariant {
  return {
    key: adapterSetCacheKey(set),
    build: (base, settings) => buildAdaptedModel(base, set, { ...options, settings }),
  };
}

/** The hashes an adapted model's request reports, LoRAs in request order. */
export function usedAdapterHashes(
  model: LoadedModel,
  set: AdapterSet,
): { loras: { name: string; shortHash: string }[]; embeddings: { name: string; shortHash: string }[] } {
  const hashes = (model as Partial<AdaptedModel>).hashes;
  const pick = (names: readonly string[], map: ReadonlyMap<string, string> | undefined) =>
    names.flatMap((name) => {
      const shortHash = map?.get(name);
      return shortHash === undefined ? [] : [{ name, shortHash }];
    });
  return {
    loras: pick(
      set.loras.map((l) => l.file.name),
      hashes?.loras,
    ),
    embeddings: pick(
      set.embeddings.map((e) => e.name),
      hashes?.embeddings,
    ),
  };
}

/** `Lora hashes` and `TI hashes` as A1111 writes them (`name: hash, name2: hash`), where there are any. */
export function adapterInfotext(
  hashes: ReturnType<typeof usedAdapterHashes>,
): { key: string; value: string }[] {
  const list = (named: readonly { name: string; shortHash: string }[]) =>
    named.map((h) => `${h.name}: ${h.shortHash}`).join(", ");
  return [
    ...(hashes.loras.length > 0 ? [{ key: "Lora hashes", value: list(hashes.loras) }] : []),
    ...(hashes.embeddings.length > 0 ? [{ key: "TI hashes", value: list(hashes.embeddings) }] : []),
  ];
}
