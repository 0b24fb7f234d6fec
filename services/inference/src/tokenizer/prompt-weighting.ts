import type { ClipTokenizer } from "./clip-tokenizer.js";
import { isBreakMarker, parsePromptAttention } from "./prompt-attention.js";

/** One text-encoder input: BOS, up to `modelMaxLength - 2` prompt tokens, EOS, padding. */
export interface WeightedChunk {
  ids: Int32Array;
  /** The attention multiplier of each position; 1 for BOS, EOS and padding. */
  weights: Float32Array;
}

export interface WeightedPrompt {
  /** At least one chunk; encode each and concatenate the hidden states along the token axis. */
  chunks: WeightedChunk[];
  /** Prompt tokens counted as A1111 shows them: 75 per full chunk, plus the last chunk's tokens. */
  tokenCount: number;
}

export interface WeightedPromptOptions {
  /**
   * A1111's `comma_padding_backtrack` (default 20): when a chunk fills up and its last comma is at most
   * this many tokens back, the words after that comma move to the next chunk. 0 disables it.
   */
  commaPaddingBacktrack?: number;
  /**
   * The id written after the first EOS of each chunk; defaults to `tokenizer.padId`. A1111 chunks with
   * EOS and then, for an encoder whose pad differs (SDXL's second, OpenCLIP: 0), overwrites what
   * follows the first EOS. To mirror A1111 on SDXL, chunk both encoders' prompts with `tokenizer` and
   * pass `tokenizer_2.padId` here: Hugging Face's `tokenizer_2` turns every "!" in the text into its
   * pad token, which would also shift the chunk boundaries between the two encoders.
   */
  padId?: number;
  /** Request field named in syntax errors. */
  field?: string;
  /** Textual-inversion embeddings: names found in the tokens become their own token ids. */
  embeddings?: EmbeddingLookup;
}

/** Where a prompt's tokens name an embedding (see the adapters domain's embedding matcher). */
export interface EmbeddingLookup {
  /** The ids that replace the name whose tokens start at `tokens[offset]`, and how many tokens it takes. */
  at(tokens: ArrayLike<number>, offset: number): { value: readonly number[]; length: number } | undefined;
}

export const DEFAULT_COMMA_PADDING_BACKTRACK = 20;

/**
 * A1111's `tokenize_line` (modules/sd_hijack_clip.py): the prompt is parsed for attention, each run
 * tokenized on its own, and the tokens dealt into chunks of `modelMaxLength - 2` with BOS/EOS around
 * them. An embedding's name becomes its ids, all in one chunk (a new chunk when they do not fit). BREAK closes the current chunk; an empty prompt gives
 * one chunk of BOS and EOS.
 */
export function tokenizeWeightedPrompt(
  tokenizer: ClipTokenizer,
  text: string,
  options: WeightedPromptOptions = {},
): WeightedPrompt {
  const backtrack = options.commaPaddingBacktrack ?? DEFAULT_COMMA_PADDING_BACKTRACK;
  if (!Number.isInteger(backtrack) || backtrack < 0) {
    throw new RangeError(`commaPaddingBacktrack must be a non-negative integer, got ${backtrack}`);
  }
  const padId = options.padId ?? tokenizer.padId;
  const chunkLength = tokenizer.modelMaxLength - 2;
  const commaId = tokenizer.tokenToId(",</w>");

  const chunks: WeightedChunk[] = [];
  let tokens: number[] = [];
  let multipliers: number[] = [];
  let tokenCount = 0;
  let lastComma = -1;

  const nextChunk = (isLast = false) => {
    tokenCount += isLast ? tokens.length : chunkLength;
    chunks.push(buildChunk(tokenizer, tokens, multipliers, chunkLength, padId));
    tokens = [];
    multipliers = [];
    lastComma = -1;
  };

  for (const run of parsePromptAttention(text, options.field)) {
    if (isBreakMarker(run)) {
      nextChunk();
      continue;
    }
    const [runText, weight] = run;
    const runTokens = tokenizer.encode(runText);
    for (let position = 0; position < runTokens.length; position++) {
      const token = runTokens[position] as number;
      if (token === commaId) {
        lastComma = tokens.length;
      } else if (
        backtrack !== 0 &&
        tokens.length === chunkLength &&
        lastComma !== -1 &&
        tokens.length - lastComma <= backtrack
      ) {
        const breakLocation = lastComma + 1;
        const relocatedTokens = tokens.slice(breakLocation);
        const relocatedMultipliers = multipliers.slice(breakLocation);
        tokens = tokens.slice(0, breakLocation);
        multipliers = multipliers.slice(0, breakLocation);
        nextChunk();
        tokens = relocatedTokens;
        multipliers = relocatedMultipliers;
      }
      if (tokens.length === chunkLength) nextChunk();
      const embedding = options.embeddings?.at(runTokens, position);
      if (embedding !== undefined) {
        if (tokens.length + embedding.value.length > chunkLength) nextChunk();
        for (const id of embedding.value) {
          tokens.push(id);
          multipliers.push(weight);
        }
        position += embedding.length - 1;
        continue;
      }
      tokens.push(token);
      multipliers.push(weight);
    }
  }
  if (tokens.length > 0 || chunks.length === 0) nextChunk(true);
  return { chunks, tokenCount };
}

/** Pads with EOS to the chunk length, wraps in BOS/EOS, then writes `padId` after the first EOS. */
function buildChunk(
  tokenizer: ClipTokenizer,
  tokens: readonly number[],
  multipliers: readonly number[],
  chunkLength: number,
  padId: number,
): WeightedChunk {
  const ids = new Int32Array(chunkLength + 2).fill(tokenizer.eosId);
  ids[0] = tokenizer.bosId;
  ids.set(tokens, 1);
  const weights = new Float32Array(chunkLength + 2).fill(1);
  weights.set(multipliers, 1);
  if (padId !== tokenizer.eosId) ids.fill(padId, ids.indexOf(tokenizer.eosId) + 1);
  return { ids, weights };
}
