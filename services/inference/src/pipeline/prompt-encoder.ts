import type { RunClock } from "@dmesh/onnx";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { ResolvedSpec } from "@dmesh/spec";
import type { LoadedModel, TextEncoder } from "../models/loaded-model.js";
import { isSdxlFamily } from "../models/pipeline-directory.js";
import {
  applyPromptWeights,
  PromptSyntaxError,
  tokenizeWeightedPrompt,
  type WeightedChunk,
} from "../tokenizer/index.js";
import { modelRun } from "./model-run-span.js";

const CHUNK = 77;

/** Prompt and negative prompt as the UNet takes them: [tokens, dim] each, plus SDXL's pooled embeddings. */
export interface EncodedPrompts {
  readonly tokens: number;
  readonly dim: number;
  readonly positive: Float32Array;
  readonly negative: Float32Array;
  readonly pooledDim: number;
  readonly pooledPositive: Float32Array | undefined;
  readonly pooledNegative: Float32Array | undefined;
}

/**
 * Encodes prompts the way AUTOMATIC1111 does on top of diffusers' SDXL/SD conditioning: attention weights,
 * 75-token chunks concatenated along the token axis, the penultimate hidden state of each encoder (SDXL)
 * concatenated along the feature axis, pooled embeddings from the first chunk of the projection encoder.
 * With plain prompts of up to 75 tokens this equals diffusers' own `encode_prompt`.
 */
export type PromptSpec = Pick<
  ResolvedSpec,
  "prompt" | "negativePrompt" | "prompt2" | "negativePrompt2" | "plainPrompt" | "clipSkip"
>;

export async function encodePrompts(
  model: LoadedModel,
  spec: PromptSpec,
  clock: RunClock,
): Promise<EncodedPrompts> {
  const encoders = model.textEncoders;
  const first = encoders[0];
  if (!first) throw new InvalidArgumentError("models.base", "the model has no text encoder");
  const sdxl = isSdxlFamily(model.dir.family);
  const textsFor = (enc: TextEncoder): [string, string] =>
    enc.component.name === "text_encoder_2" && model.dir.family === "sdxl"
      ? [spec.prompt2, spec.negativePrompt2]
      : [spec.prompt, spec.negativePrompt];
  const prepare = (text: string) => (spec.plainPrompt ? text.replace(/([()[\]\\])/g, "\\$1") : text);

  // Chunk with the first tokenizer so all encoders see the same boundaries (A1111's rule for SDXL).
  const chunked = encoders.map((enc) => {
    const [pos, neg] = textsFor(enc);
    const tokenize = (text: string, field: string) => {
      try {
        return tokenizeWeightedPrompt(first.tokenizer, prepare(text), {
          padId: enc.tokenizer.padId,
          field,
          ...(model.embeddings === undefined ? {} : { embeddings: model.embeddings }),
        }).chunks;
      } catch (err) {
        if (err instanceof PromptSyntaxError)
          throw new InvalidArgumentError(`spec.conditioning.${err.field}`, err.message);
        throw err;
      }
    };
    return { enc, pos: tokenize(pos, "prompt"), neg: tokenize(neg, "negative_prompt") };
  });
  let chunks = Math.max(...chunked.flatMap((c) => [c.pos.length, c.neg.length]));
  if (model.contract.maxTokens !== undefined)
    chunks = Math.min(chunks, Math.max(1, Math.floor(model.contract.maxTokens / CHUNK)));

  const zeroNegative =
    model.dir.forceZerosForEmptyPrompt && spec.negativePrompt === "" && spec.negativePrompt2 === "";
  const parts: { positive: Float32Array; negative: Float32Array; dim: number }[] = [];
  let pooled: { positive: Float32Array; negative: Float32Array; dim: number } | undefined;

  for (const { enc, pos, neg } of chunked) {
    const emptyChunk = tokenizeWeightedPrompt(first.tokenizer, "", { padId: enc.tokenizer.padId })
      .chunks[0] as WeightedChunk;
    const fit = (list: WeightedChunk[]) => Array.from({ length: chunks }, (_, i) => list[i] ?? emptyChunk);
    const all = [...fit(pos), ...fit(neg)];
    const ids = new Int32Array(all.length * CHUNK);
    for (const [i, c] of all.entries()) ids.set(c.ids.subarray(0, CHUNK), i * CHUNK);
    const layer = hiddenLayerName(enc, sdxl, spec.clipSkip);
    const wanted = [layer, ...(enc.pooled ? [enc.pooled] : [])];
    const out = await modelRun(enc.component.model, enc.component.name, () =>
      enc.component.run({ input_ids: { data: ids, dims: [all.length, CHUNK] } }, { clock, outputs: wanted }),
    );
    const hidden = out[layer];
    if (!hidden) throw new Error(`${enc.component.name} did not return ${layer}`);
    const dim = hidden.dims[2] ?? 0;
    const weighted = (from: number) => {
      const seq = new Float32Array(chunks * CHUNK * dim);
      for (let c = 0; c < chunks; c++) {
        const i = from + c;
        const slice = hidden.data.subarray(i * CHUNK * dim, (i + 1) * CHUNK * dim);
        seq.set(applyPromptWeights(slice, all[i]?.weights ?? []), c * CHUNK * dim);
      }
      return seq;
    };
    parts.push({
      positive: weighted(0),
      negative: zeroNegative ? new Float32Array(chunks * CHUNK * dim) : weighted(chunks),
      dim,
    });
    if (enc.pooled && (enc.component.name === "text_encoder_2" || !sdxl)) {
      const p = out[enc.pooled];
      if (p) {
        const pd = p.dims[1] ?? 0;
        pooled = {
          positive: p.data.slice(0, pd),
          negative: zeroNegative ? new Float32Array(pd) : p.data.slice(chunks * pd, (chunks + 1) * pd),
          dim: pd,
        };
      }
    }
  }

  const tokens = chunks * CHUNK;
  const dim = parts.reduce((n, p) => n + p.dim, 0);
  const concat = (which: "positive" | "negative") => {
    const out = new Float32Array(tokens * dim);
    for (let t = 0; t < tokens; t++) {
      let offset = t * dim;
      for (const part of parts) {
        out.set(part[which].subarray(t * part.dim, (t + 1) * part.dim), offset);
        offset += part.dim;
      }
    }
    return out;
  };
  return {
    tokens,
    dim,
    positive: concat("positive"),
    negative: concat("negative"),
    pooledDim: pooled?.dim ?? 0,
    pooledPositive: sdxl ? pooled?.positive : undefined,
    pooledNegative: sdxl ? pooled?.negative : undefined,
  };
}

/**
 * SDXL (and diffusers with clip_skip) take hidden_states[-(clip_skip + 2)]; SD 1.x/2.x without clip skip
 * take last_hidden_state (after the final layer norm). With clip skip on SD 1.x/2.x we return the earlier
 * layer without that final norm, since the norm is not a separate output of the export.
 */
function hiddenLayerName(enc: TextEncoder, sdxl: boolean, clipSkip: number): string {
  const n = enc.hiddenStates.length;
  if (!sdxl && clipSkip === 0 && enc.lastHiddenState) return enc.lastHiddenState;
  const index = sdxl ? n - 2 - clipSkip : n - 1 - clipSkip;
  const name = enc.hiddenStates[index];
  if (!name)
    throw new InvalidArgumentError(
      "spec.params.clip_skip",
      `must leave at least one layer (the encoder has ${n - 1})`,
    );
  return name;
}
