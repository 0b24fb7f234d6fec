import { BoundedCache } from "./bounded-cache.js";
import { SYMBOL_TO_BYTE, toByteSymbols } from "./byte-alphabet.js";
import { bytePairMerge, END_OF_WORD } from "./byte-pair-merge.js";
import { preTokenizeClip } from "./clip-pre-tokenizer.js";
import { readClipTokenizerDefinition } from "./tokenizer-files.js";

export interface SpecialTokens {
  bos: string;
  eos: string;
  unk: string;
  pad: string;
}

/** Hugging Face `CLIPTokenizer` defaults; SDXL's `tokenizer_2` overrides `pad` with "!". */
export const CLIP_SPECIAL_TOKENS: Readonly<SpecialTokens> = {
  bos: "<|startoftext|>",
  eos: "<|endoftext|>",
  unk: "<|endoftext|>",
  pad: "<|endoftext|>",
};

/** CLIP's text encoders have 77 positions. */
export const CLIP_MAX_LENGTH = 77;

export interface ClipTokenizerDefinition {
  /** vocab.json: token to id. */
  vocab: ReadonlyMap<string, number>;
  /** merges.txt, highest priority first. */
  merges: ReadonlyArray<readonly [string, string]>;
  /** Tokens cut out of the text verbatim before BPE (Hugging Face "added tokens"); the special tokens always are. */
  addedTokens?: ReadonlyMap<string, number>;
  specialTokens?: Partial<SpecialTokens>;
  /** Default `maxLength` of `tokenize`; 77 when absent. */
  modelMaxLength?: number;
  /** Capacity of the word to ids cache. */
  wordCacheSize?: number;
}

export interface TokenizeOptions {
  /** Total length including BOS and EOS; defaults to the tokenizer's `modelMaxLength`. */
  maxLength?: number;
}

export interface TokenizedText {
  /** BOS, at most `maxLength - 2` tokens, EOS, then the pad id up to `maxLength`. */
  ids: Int32Array;
  /** 1 for BOS, the tokens and EOS; 0 for padding. */
  attentionMask: Int32Array;
  /** Whether tokens were dropped to fit `maxLength`. */
  truncated: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export interface ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  /** Size of vocab.json (Hugging Face `vocab_size`). */
  readonly vocabSize: number;
  readonly modelMaxLength: number;
  /** Token ids without BOS/EOS, as `tokenizer(text, add_special_tokens=False).input_ids`. */
  encode(text: string): number[];
  /** As `tokenizer(text, padding="max_length", max_length=..., truncation=True)`: what diffusers feeds the text encoder. */
  tokenize(text: string, options?: TokenizeOptions): TokenizedText;
  /** As `convert_tokens_to_string`: byte-level symbols back to text, `</w>` as a space. */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  /** The id of a vocabulary or added token (e.g. ",</w>"), if it has one. */
  tokenToId(token: string): number | undefined;
}

const DEFAULT_WORD_CACHE_SIZE = 16_384;

/** Words the pre-tokenizer can emit that Hugging Face's BPE cache maps to themselves instead of merging. */
const VERBATIM_WORDS = new Set(["<|startoftext|>", "<|endoftext|>"]);

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

class BpeClipTokenizer implements ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly vocabSize: number;
  readonly modelMaxLength: number;
  readonly #tokenToId: Map<string, number>;
  readonly #idToToken: Map<number, string>;
  readonly #ranks: Map<string, number>;
  readonly #added: Map<string, number>;
  /** One capturing group, so that `split` keeps the added tokens at odd indices. */
  readonly #addedPattern: RegExp;
  readonly #specialIds: Set<number>;
  readonly #wordCache: BoundedCache<string, readonly number[]>;

  constructor(definition: ClipTokenizerDefinition) {
    const { vocab, merges, addedTokens = new Map<string, number>() } = definition;
    this.vocabSize = vocab.size;
    this.#tokenToId = new Map([...vocab, ...addedTokens]);
    this.#idToToken = new Map([...this.#tokenToId].map(([token, id]) => [id, token]));
    // Like Hugging Face's dict(zip(merges, range)), a repeated merge keeps its last rank.
    this.#ranks = new Map(merges.map(([left, right], rank) => [`${left} ${right}`, rank]));

    const special = { ...CLIP_SPECIAL_TOKENS, ...definition.specialTokens };
    const idOf = (token: string) => {
      const id = this.#tokenToId.get(token);
      if (id === undefined) throw new Error(`special token "${token}" is not in the vocabulary`);
      return id;
    };
    this.bosId = idOf(special.bos);
    this.eosId = idOf(special.eos);
    this.unkId = idOf(special.unk);
    this.padId = idOf(special.pad);
    this.#specialIds = new Set([this.bosId, this.eosId, this.unkId, this.padId]);

    this.#added = new Map(addedTokens);
    for (const token of Object.values(special)) this.#added.set(token, idOf(token));
    // Longest first, so that a token containing another one wins where both match.
    const alternatives = [...this.#added.keys()]
      .filter((token) => token.length > 0)
      .sort((a, b) => b.length - a.length)
      .map(escapeRegExp);
    this.#addedPattern = new RegExp(`(${alternatives.join("|")})`);

    this.modelMaxLength = definition.modelMaxLength ?? CLIP_MAX_LENGTH;
    if (!Number.isInteger(this.modelMaxLength) || this.modelMaxLength < 3) {
      throw new RangeError(`modelMaxLength must be an integer >= 3, got ${this.modelMaxLength}`);
    }
    this.#wordCache = new BoundedCache(definition.wordCacheSize ?? DEFAULT_WORD_CACHE_SIZE);
  }

  encode(text: string): number[] {
    // Added tokens are cut out of the raw text first (Hugging Face's added tokens); every part between them is
    // then cleaned and split as OpenAI's tokenizer cleans a whole prompt.
    const ids: number[] = [];
    text.split(this.#addedPattern).forEach((part, index) => {
      if (index % 2 === 1) ids.push(this.#added.get(part) ?? this.unkId);
      else for (const word of preTokenizeClip(part)) ids.push(...this.#encodeWord(word));
    });
    return ids;
  }

  tokenize(text: string, { maxLength = this.modelMaxLength }: TokenizeOptions = {}): TokenizedText {
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new RangeError(`maxLength must be an integer >= 2, got ${maxLength}`);
    }
    const body = this.encode(text);
    const kept = Math.min(body.length, maxLength - 2);
    const ids = new Int32Array(maxLength).fill(this.padId);
    ids[0] = this.bosId;
    ids.set(body.slice(0, kept), 1);
    ids[kept + 1] = this.eosId;
    const attentionMask = new Int32Array(maxLength).fill(1, 0, kept + 2);
    return { ids, attentionMask, truncated: body.length > kept };
  }

  decode(ids: ArrayLike<number>, { skipSpecialTokens = false }: DecodeOptions = {}): string {
    let symbols = "";
    for (const id of Array.from(ids)) {
      if (skipSpecialTokens && this.#specialIds.has(id)) continue;
      const token = this.#idToToken.get(id);
      if (token === undefined) throw new RangeError(`unknown token id ${id}`);
      symbols += token;
    }
    const bytes: number[] = [];
    const utf8 = new TextEncoder();
    for (const symbol of symbols) {
      const byte = SYMBOL_TO_BYTE.get(symbol);
      // An added token may hold characters outside the byte alphabet: keep them as they are.
      if (byte === undefined) bytes.push(...utf8.encode(symbol));
      else bytes.push(byte);
    }
    return new TextDecoder().decode(new Uint8Array(bytes)).replaceAll(END_OF_WORD, " ").trim();
  }

  tokenToId(token: string): number | undefined {
    return this.#tokenToId.get(token);
  }

  #encodeWord(word: string): readonly number[] {
    const cached = this.#wordCache.get(word);
    if (cached) return cached;
    const symbols = VERBATIM_WORDS.has(word) ? [word] : bytePairMerge(toByteSymbols(word), this.#ranks);
    const ids = symbols.map((symbol) => this.#tokenToId.get(symbol) ?? this.unkId);
    this.#wordCache.set(word, ids);
    return ids;
  }
}

export function createClipTokenizer(definition: ClipTokenizerDefinition): ClipTokenizer {
  return new BpeClipTokenizer(definition);
}

/** Reads a diffusers `tokenizer/` or `tokenizer_2/` folder (Hugging Face layout). */
export async function loadClipTokenizer(dir: string): Promise<ClipTokenizer> {
  return createClipTokenizer(await readClipTokenizerDefinition(dir));
}
