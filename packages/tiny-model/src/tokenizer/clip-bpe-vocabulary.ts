// A real, tiny CLIP byte-level BPE vocabulary, built the way openai/CLIP builds its own
// (simple_tokenizer.py): the 256 byte-to-unicode symbols, the same symbols with "</w>", one symbol per
// learned merge, then <|startoftext|> and <|endoftext|> as the last two ids. The merges are learned
// here, deterministically, from a small built-in text with CLIP's own pre-tokenization.

export const START_OF_TEXT = "<|startoftext|>";
export const END_OF_TEXT = "<|endoftext|>";
const END_OF_WORD = "</w>";

/** GPT-2/CLIP bytes_to_unicode as [byte, symbol] pairs, in the order CLIP's vocabulary lists them:
 * printable bytes map to themselves, the others to U+0100 onwards. */
export function bytesToUnicode(): [number, string][] {
  const printable: number[] = [];
  for (const [from, to] of [
    [0x21, 0x7e],
    [0xa1, 0xac],
    [0xae, 0xff],
  ] as const) {
    for (let b = from; b <= to; b++) printable.push(b);
  }
  const pairs: [number, string][] = printable.map((b) => [b, String.fromCodePoint(b)]);
  let extra = 0;
  for (let b = 0; b < 256; b++)
    if (!printable.includes(b)) pairs.push([b, String.fromCodePoint(256 + extra++)]);
  return pairs;
}

/** CLIP's pre-tokenization: lower-case, collapse whitespace, split into words, digits and punctuation. */
const WORD_PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/gu;

export function preTokenize(text: string): string[] {
  const clean = text.replace(/\s+/g, " ").trim().toLowerCase();
  return clean.match(WORD_PATTERN) ?? [];
}

/** A word as CLIP's BPE starts it: one symbol per UTF-8 byte, "</w>" on the last. */
function wordSymbols(word: string, byteSymbol: readonly string[]): string[] {
  const symbols = Array.from(new TextEncoder().encode(word), (b) => byteSymbol[b] as string);
  symbols[symbols.length - 1] += END_OF_WORD;
  return symbols;
}

export interface ClipBpeVocabulary {
  /** token → id, ids contiguous from 0. */
  readonly vocab: ReadonlyMap<string, number>;
  /** Merges in rank order, each a pair of existing symbols. */
  readonly merges: readonly (readonly [string, string])[];
}

/**
 * Learns `mergeCount` merges from `text`: repeatedly merges the most frequent adjacent pair (ties go to
 * the pair whose "a b" sorts first), skipping pairs whose result is already a symbol, so every merge adds
 * exactly one vocabulary entry.
 */
export function learnClipBpeVocabulary(text: string, mergeCount: number): ClipBpeVocabulary {
  const pairs = bytesToUnicode();
  const byteSymbol: string[] = new Array(256);
  for (const [b, symbol] of pairs) byteSymbol[b] = symbol;
  const base = pairs.map(([, symbol]) => symbol);
  const vocabList = [...base, ...base.map((s) => s + END_OF_WORD)];
  const known = new Set(vocabList);

  const wordCounts = new Map<string, number>();
  for (const word of preTokenize(text)) wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
  const words = [...wordCounts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([word, count]) => ({ symbols: wordSymbols(word, byteSymbol), count }));

  const merges: [string, string][] = [];
  while (merges.length < mergeCount) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, count] of pairCounts) {
      if (known.has(key.replace(" ", ""))) continue;
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined) break; // every word is a single symbol
    const [left, right] = best.split(" ") as [string, string];
    const merged = left + right;
    merges.push([left, right]);
    vocabList.push(merged);
    known.add(merged);
    for (const word of words) {
      const out: string[] = [];
      for (let i = 0; i < word.symbols.length; i++) {
        if (word.symbols[i] === left && word.symbols[i + 1] === right) {
          out.push(merged);
          i++;
        } else {
          out.push(word.symbols[i] as string);
        }
      }
      word.symbols = out;
    }
  }
  vocabList.push(START_OF_TEXT, END_OF_TEXT);
  return { vocab: new Map(vocabList.map((token, id) => [token, id])), merges };
}
