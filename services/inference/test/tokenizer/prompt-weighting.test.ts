import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClipTokenizer, loadClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { tokenizeWeightedPrompt, type WeightedChunk } from "../../src/tokenizer/prompt-weighting.js";
import { CLIP_DATA_DIR, hasClipData, withClipData, writeSdxlTokenizer2Dir } from "./clip-data.js";

const BOS = 49406;
const EOS = 49407;
const CAT = 2368;
const DOG = 1929;
const COMMA = 267;
const repeat = (id: number, n: number) => Array<number>(n).fill(id);
/** BOS, the tokens, then `pad` up to 76, then the final position: A1111's 77-token chunk. */
const chunkIds = (tokens: number[], pad = EOS) => [BOS, ...tokens, EOS, ...repeat(pad, 75 - tokens.length)];
const ids = (chunk: WeightedChunk | undefined) => Array.from(chunk?.ids ?? []);

describe.skipIf(!hasClipData)(withClipData("tokenizeWeightedPrompt (A1111 chunking)"), () => {
  let tokenizer: ClipTokenizer;
  beforeAll(async () => {
    tokenizer = await loadClipTokenizer(CLIP_DATA_DIR);
  });

  it("gives one chunk of BOS and EOS for an empty prompt", () => {
    const { chunks, tokenCount } = tokenizeWeightedPrompt(tokenizer, "");
    expect(chunks).toHaveLength(1);
    expect(ids(chunks[0])).toEqual(chunkIds([]));
    expect(Array.from(chunks[0]?.weights ?? [])).toEqual(repeat(1, 77));
    expect(tokenCount).toBe(0);
  });

  it("gives each token the weight of its run, and 1 to BOS, EOS and padding", () => {
    const { chunks, tokenCount } = tokenizeWeightedPrompt(tokenizer, "a (photo:1.5) of a [cat]");
    expect(ids(chunks[0])).toEqual(chunkIds([320, 1125, 539, 320, CAT]));
    const weights = Array.from(chunks[0]?.weights ?? []);
    expect(weights.slice(0, 7)).toEqual([1, 1, 1.5, 1, 1, Math.fround(1 / 1.1), 1]);
    expect(weights.slice(7)).toEqual(repeat(1, 70));
    expect(tokenCount).toBe(5);
  });

  it("cuts a long prompt into chunks of 75", () => {
    const { chunks, tokenCount } = tokenizeWeightedPrompt(tokenizer, Array(80).fill("cat").join(" "));
    expect(chunks.map(ids)).toEqual([chunkIds(repeat(CAT, 75)), chunkIds(repeat(CAT, 5))]);
    expect(tokenCount).toBe(80);
  });

  describe("comma back-off", () => {
    const prompt = (cats: number, dogs: number) =>
      `${Array(cats).fill("cat").join(" ")}, ${Array(dogs).fill("dog").join(" ")}`;

    it("moves the words after a comma less than 20 tokens back into the next chunk", () => {
      const { chunks, tokenCount } = tokenizeWeightedPrompt(tokenizer, prompt(60, 20));
      expect(chunks.map(ids)).toEqual([chunkIds([...repeat(CAT, 60), COMMA]), chunkIds(repeat(DOG, 20))]);
      expect(tokenCount).toBe(95);
    });

    it("cuts at 75 when the back-off is off", () => {
      const { chunks } = tokenizeWeightedPrompt(tokenizer, prompt(60, 20), { commaPaddingBacktrack: 0 });
      expect(chunks.map(ids)).toEqual([
        chunkIds([...repeat(CAT, 60), COMMA, ...repeat(DOG, 14)]),
        chunkIds(repeat(DOG, 6)),
      ]);
    });

    it("cuts at 75 when the last comma is further back than the back-off", () => {
      const { chunks } = tokenizeWeightedPrompt(tokenizer, prompt(50, 30));
      expect(chunks.map(ids)).toEqual([
        chunkIds([...repeat(CAT, 50), COMMA, ...repeat(DOG, 24)]),
        chunkIds(repeat(DOG, 6)),
      ]);
    });
  });

  it("starts a new chunk at BREAK, carrying weights along", () => {
    const { chunks, tokenCount } = tokenizeWeightedPrompt(tokenizer, "a (cat:1.2) BREAK a [dog]");
    expect(chunks.map(ids)).toEqual([chunkIds([320, CAT]), chunkIds([320, DOG])]);
    expect(Array.from(chunks[0]?.weights.slice(0, 4) ?? [])).toEqual([1, 1, Math.fround(1.2), 1]);
    expect(Array.from(chunks[1]?.weights.slice(0, 4) ?? [])).toEqual([1, 1, Math.fround(1 / 1.1), 1]);
    expect(tokenCount).toBe(77);
  });

  it("writes padId after the first EOS, as A1111 does for OpenCLIP (diffusers issue #4153)", () => {
    // open_clip.tokenize("! !! !!!") in that issue: 49406, 256, 748, 995, 49407, then zeros.
    const { chunks } = tokenizeWeightedPrompt(tokenizer, "! !! !!!", { padId: 0 });
    expect(ids(chunks[0])).toEqual(chunkIds([256, 748, 995], 0));
  });

  it("refuses a negative comma back-off", () => {
    expect(() => tokenizeWeightedPrompt(tokenizer, "a", { commaPaddingBacktrack: -1 })).toThrow(RangeError);
  });
});

describe.skipIf(!hasClipData)(withClipData("tokenizeWeightedPrompt with SDXL's tokenizer_2"), () => {
  let dir: string;
  let tokenizer: ClipTokenizer;
  beforeAll(async () => {
    dir = await writeSdxlTokenizer2Dir();
    tokenizer = await loadClipTokenizer(dir);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("pads after EOS with the tokenizer's own pad id", () => {
    const { chunks } = tokenizeWeightedPrompt(tokenizer, "a cat");
    expect(ids(chunks[0])).toEqual(chunkIds([320, CAT], 0));
  });
});
