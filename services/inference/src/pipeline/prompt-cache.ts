import type { LoadedModel } from "../models/loaded-model.js";
import type { EncodedPrompts, PromptSpec } from "./prompt-encoder.js";

/**
 * The encoded prompts of recent requests, per loaded model. Batch jobs repeat one prompt over many seeds;
 * encoding it again costs the text encoders' runs and buffers that outlive the request. Entries are shared:
 * nothing may write into them.
 */
export class PromptCache {
  private readonly byModel = new WeakMap<LoadedModel, Map<string, EncodedPrompts>>();

  constructor(private readonly perModel = 8) {}

  async get(
    model: LoadedModel,
    spec: PromptSpec,
    encode: () => Promise<EncodedPrompts>,
  ): Promise<EncodedPrompts> {
    let entries = this.byModel.get(model);
    if (!entries) {
      entries = new Map();
      this.byModel.set(model, entries);
    }
    const key = JSON.stringify([
      spec.prompt,
      spec.negativePrompt,
      spec.prompt2,
      spec.negativePrompt2,
      spec.plainPrompt,
      spec.clipSkip,
    ]);
    const cached = entries.get(key);
    if (cached) {
      // Most recently used last: the first entry is the one to drop.
      entries.delete(key);
      entries.set(key, cached);
      return cached;
    }
    const encoded = await encode();
    entries.set(key, encoded);
    if (entries.size > this.perModel) entries.delete(entries.keys().next().value as string);
    return encoded;
  }
}
