import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyModel } from "../src/index.js";
import {
  bytesToUnicode,
  END_OF_TEXT,
  learnClipBpeVocabulary,
  preTokenize,
  START_OF_TEXT,
} from "../src/tokenizer/clip-bpe-vocabulary.js";
import { TRAINING_CORPUS } from "../src/tokenizer/corpus.js";
import { bpe, readInitializers, tempDir } from "./helpers.js";

describe("the tiny CLIP BPE vocabulary", () => {
  const pairs = bytesToUnicode();
  const byteSymbol: string[] = [];
  for (const [b, s] of pairs) byteSymbol[b] = s;
  const vocabulary = learnClipBpeVocabulary(TRAINING_CORPUS, 384);
  const ids = [...vocabulary.vocab.entries()].sort(([, a], [, b]) => a - b);

  it("maps the 256 bytes to distinct symbols in CLIP's order", () => {
    expect(new Set(pairs.map(([, s]) => s)).size).toBe(256);
    expect(pairs[0]).toEqual([0x21, "!"]);
    expect(byteSymbol[0x20]).toBe("\u0120"); // space → Ġ
    expect(byteSymbol[0x61]).toBe("a");
  });

  it("lays out bytes, bytes</w>, merges, then <|startoftext|> and <|endoftext|>, with contiguous ids", () => {
    expect(ids.map(([, id]) => id)).toEqual(ids.map((_, i) => i));
    expect(ids.slice(0, 256).map(([t]) => t)).toEqual(pairs.map(([, s]) => s));
    expect(ids.slice(256, 512).map(([t]) => t)).toEqual(pairs.map(([, s]) => `${s}</w>`));
    expect(vocabulary.merges).toHaveLength(384);
    expect(vocabulary.vocab.size).toBe(512 + 384 + 2);
    expect(ids.at(-2)).toEqual([START_OF_TEXT, 896]);
    expect(ids.at(-1)).toEqual([END_OF_TEXT, 897]);
  });

  it("has merges that join existing symbols into the entry at 512 + rank", () => {
    vocabulary.merges.forEach(([a, b], rank) => {
      const left = vocabulary.vocab.get(a);
      const right = vocabulary.vocab.get(b);
      expect(left, `merge ${rank} left ${a}`).toBeDefined();
      expect(right, `merge ${rank} right ${b}`).toBeDefined();
      expect(left as number).toBeLessThan(512 + rank);
      expect(right as number).toBeLessThan(512 + rank);
      expect(vocabulary.vocab.get(a + b)).toBe(512 + rank);
    });
  });

  it("turns common prompt words into single tokens and splits unknown ones into known pieces", () => {
    const ranks = new Map(vocabulary.merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const prompt = "A photo of a cat, highly detailed painting";
    const words = preTokenize(prompt);
    expect(words).toEqual(["a", "photo", "of", "a", "cat", ",", "highly", "detailed", "painting"]);
    for (const word of words) expect(bpe(word, ranks, byteSymbol)).toEqual([`${word}</w>`]);
    const pieces = bpe("zyzzyva", ranks, byteSymbol);
    expect(pieces.length).toBeGreaterThan(1);
    for (const piece of pieces) expect(vocabulary.vocab.has(piece)).toBe(true);
  });

  it("is learned deterministically", () => {
    expect(learnClipBpeVocabulary(TRAINING_CORPUS, 384)).toEqual(vocabulary);
  });
});

describe("tokenizer files of a generated SDXL model", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir("tokenizer");
    await writeTinyModel(dir.path, { kind: "sdxl" });
  });
  afterAll(() => dir.remove());

  const readJson = async (path: string) => JSON.parse(await readFile(join(dir.path, path), "utf8"));

  it("parse, and tokenizer/tokenizer_2 differ only in the pad token", async () => {
    for (const folder of ["tokenizer", "tokenizer_2"]) {
      const vocab = (await readJson(`${folder}/vocab.json`)) as Record<string, number>;
      const merges = (await readFile(join(dir.path, folder, "merges.txt"), "utf8")).trimEnd().split("\n");
      expect(merges[0]).toBe("#version: 0.2");
      for (const line of merges.slice(1)) {
        const [a, b, extra] = line.split(" ");
        expect(extra).toBeUndefined();
        expect(vocab[a as string], line).toBeDefined();
        expect(vocab[b as string], line).toBeDefined();
        expect(vocab[`${a}${b}`], line).toBeDefined();
      }
      expect(vocab[END_OF_TEXT]).toBe(Object.keys(vocab).length - 1);
      const config = await readJson(`${folder}/tokenizer_config.json`);
      expect(config).toMatchObject({
        tokenizer_class: "CLIPTokenizer",
        model_max_length: 77,
        do_lower_case: true,
      });
      expect(config.bos_token.content).toBe(START_OF_TEXT);
      expect(config.eos_token.content).toBe(END_OF_TEXT);
      const special = await readJson(`${folder}/special_tokens_map.json`);
      expect(special.pad_token).toBe(folder === "tokenizer" ? END_OF_TEXT : "!");
      expect(config.pad_token).toBe(special.pad_token);
    }
    expect(await readFile(join(dir.path, "tokenizer/vocab.json"))).toEqual(
      await readFile(join(dir.path, "tokenizer_2/vocab.json")),
    );
  });

  it("size the text encoders' embedding tables and configs", async () => {
    const vocab = (await readJson("tokenizer/vocab.json")) as Record<string, number>;
    const size = Object.keys(vocab).length;
    for (const folder of ["text_encoder", "text_encoder_2"]) {
      const config = await readJson(`${folder}/config.json`);
      expect(config.vocab_size).toBe(size);
      expect(config.eos_token_id).toBe(vocab[END_OF_TEXT]);
      expect(config.bos_token_id).toBe(vocab[START_OF_TEXT]);
      const init = await readInitializers(join(dir.path, folder, "model.onnx"));
      expect(init.get("text_model.embeddings.token_embedding.weight")).toEqual([size, config.hidden_size]);
    }
    expect((await readJson("text_encoder_2/config.json")).pad_token_id).toBe(vocab["!"]);
  });
});
