import { rm } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { BoundedCache } from "../../src/tokenizer/bounded-cache.js";
import { createClipTokenizer, loadClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { TokenizerFileError } from "../../src/tokenizer/tokenizer-errors.js";
import { writeTokenizerDir } from "./clip-data.js";

// A handmade vocabulary: a few byte symbols, some merged symbols and the two CLIP specials.
const VOCAB = {
  "!": 0,
  a: 1,
  e: 2,
  h: 3,
  l: 4,
  o: 5,
  Ã: 6,
  "a</w>": 7,
  "o</w>": 8,
  "lo</w>": 9,
  he: 10,
  ll: 11,
  aa: 12,
  "!</w>": 13,
  "<|startoftext|>": 14,
  "<|endoftext|>": 15,
};
// Rank order matters: "l o</w>" before "l l" makes "hello" he|l|lo</w>, not he|ll|o</w>.
const MERGES = "#version: 0.2\nl o</w>\nl l\nh e\na a\n";
const UNK = 15;

const dirs: string[] = [];
async function load(extra: Record<string, unknown> = {}) {
  const dir = await writeTokenizerDir({ "vocab.json": VOCAB, "merges.txt": MERGES, ...extra });
  dirs.push(dir);
  return loadClipTokenizer(dir);
}
/** Resolves to the TokenizerFileError that loading a folder with these files throws. */
async function loadError(files: Record<string, unknown>): Promise<TokenizerFileError> {
  const dir = await writeTokenizerDir(files);
  dirs.push(dir);
  const error = await loadClipTokenizer(dir).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(TokenizerFileError);
  return error as TokenizerFileError;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe("CLIP tokenizer on a handmade vocabulary", () => {
  it("merges the lowest-ranked pair first", async () => {
    const tokenizer = await load();
    expect(tokenizer.encode("hello")).toEqual([10, 4, 9]);
    expect(tokenizer.encode("HELLO hello")).toEqual([10, 4, 9, 10, 4, 9]);
  });

  it("merges repeated pairs left to right without overlap", async () => {
    expect((await load()).encode("aaa")).toEqual([12, 7]);
  });

  it("falls back to byte symbols, and to the unknown token where the vocabulary lacks them", async () => {
    const tokenizer = await load();
    // "é" is the bytes C3 A9: "Ã" is in the vocabulary, "©</w>" is not.
    expect(tokenizer.encode("é")).toEqual([6, UNK]);
    expect(tokenizer.encode("z")).toEqual([UNK]);
  });

  it('keeps "!" a BPE word unless it is the pad token', async () => {
    const plain = await load();
    expect(plain.encode("ha!")).toEqual([3, 7, 13]);
    expect(plain.padId).toBe(UNK);

    const bang = await load({
      "tokenizer_config.json": {
        pad_token: "!",
        added_tokens_decoder: { "0": { content: "!", special: true } },
      },
    });
    expect(bang.padId).toBe(0);
    expect(bang.encode("ha!")).toEqual([3, 7, 0]);
    const { ids, attentionMask } = bang.tokenize("ha", { maxLength: 6 });
    expect(Array.from(ids)).toEqual([14, 3, 7, 15, 0, 0]);
    expect(Array.from(attentionMask)).toEqual([1, 1, 1, 1, 0, 0]);
  });

  it("lets special_tokens_map.json override tokenizer_config.json", async () => {
    const tokenizer = await load({
      "tokenizer_config.json": { pad_token: "<|endoftext|>" },
      "special_tokens_map.json": { pad_token: { content: "!", normalized: false } },
    });
    expect(tokenizer.padId).toBe(0);
  });

  it("truncates to maxLength keeping EOS last", async () => {
    const { ids, truncated } = (await load()).tokenize("hello hello", { maxLength: 5 });
    expect(Array.from(ids)).toEqual([14, 10, 4, 9, 15]);
    expect(truncated).toBe(true);
  });

  it("takes model_max_length from tokenizer_config.json, ignoring Hugging Face's 'no limit' value", async () => {
    const eight = await load({ "tokenizer_config.json": { model_max_length: 8 } });
    expect(eight.modelMaxLength).toBe(8);
    expect(eight.tokenize("hello").ids).toHaveLength(8);
    const unset = await load({
      "tokenizer_config.json": '{"model_max_length": 1000000000000000019884624838656}',
    });
    expect(unset.modelMaxLength).toBe(77);
  });

  it("needs its special tokens in the vocabulary", () => {
    const vocab = new Map(Object.entries(VOCAB));
    expect(() => createClipTokenizer({ vocab, merges: [], specialTokens: { pad: "<pad>" } })).toThrow(
      /"<pad>" is not in the vocabulary/,
    );
  });
});

describe("tokenizer files", () => {
  it("names a missing vocab.json or merges.txt", async () => {
    const noVocab = await loadError({ "merges.txt": MERGES });
    expect(noVocab.file).toMatch(/vocab\.json$/);
    expect(noVocab.message).toMatch(/vocab\.json: missing/);
    const noMerges = await loadError({ "vocab.json": VOCAB });
    expect(noMerges.file).toMatch(/merges\.txt$/);
  });

  it("names a corrupt vocab.json", async () => {
    const broken = await loadError({ "vocab.json": '{"a": 1,', "merges.txt": MERGES });
    expect(broken.message).toMatch(/vocab\.json: is not valid JSON/);
    const badId = await loadError({ "vocab.json": { a: "one" }, "merges.txt": MERGES });
    expect(badId.message).toMatch(/vocab\.json: the id of token "a" must be a non-negative integer/);
    const notObject = await loadError({ "vocab.json": [1, 2], "merges.txt": MERGES });
    expect(notObject.message).toMatch(/must hold a JSON object/);
  });

  it("names the line of a corrupt merges.txt", async () => {
    const error = await loadError({ "vocab.json": VOCAB, "merges.txt": "#version: 0.2\nl o</w>\nl l x\n" });
    expect(error.file).toMatch(/merges\.txt$/);
    expect(error.message).toMatch(/line 3 must hold two symbols/);
  });

  it("names the file that configures an unknown special token", async () => {
    const error = await loadError({
      "vocab.json": VOCAB,
      "merges.txt": MERGES,
      "tokenizer_config.json": { pad_token: "<pad>" },
    });
    expect(error.file).toMatch(/tokenizer_config\.json$/);
    expect(error.message).toMatch(/pad_token "<pad>" is not in vocab\.json/);
    const noDefaults = await loadError({ "vocab.json": { a: 0 }, "merges.txt": MERGES });
    expect(noDefaults.message).toMatch(/vocab\.json: bos_token "<\|startoftext\|>" is not in vocab\.json/);
  });

  it("rejects a model_max_length that is not a usable length", async () => {
    const error = await loadError({
      "vocab.json": VOCAB,
      "merges.txt": MERGES,
      "tokenizer_config.json": { model_max_length: "77" },
    });
    expect(error.message).toMatch(/tokenizer_config\.json: model_max_length must be a number/);
  });
});

describe("BoundedCache", () => {
  it("evicts the least recently used entry", () => {
    const cache = new BoundedCache<string, number>(2);
    cache.set("a", 1);
    cache.set("b", 2);
    expect(cache.get("a")).toBe(1);
    cache.set("c", 3);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toBe(1);
    expect(cache.get("c")).toBe(3);
    expect(cache.size).toBe(2);
  });
});
