import { describe, expect, it } from "vitest";
import { createEmbeddingMatcher } from "../../src/adapters/index.js";

describe("createEmbeddingMatcher (A1111's find_embedding_at_position)", () => {
  // Token ids as a tokenizer would give them: "easy"=10, "negative"=11, "bad"=20, "hands"=21, "v2"=22.
  const matcher = createEmbeddingMatcher([
    { ids: [10, 11], value: "easynegative" },
    { ids: [20, 21], value: "bad-hands" },
    { ids: [20, 21, 22], value: "bad-hands-v2" },
    { ids: [20], value: "bad" },
    { ids: [], value: "nothing" },
  ]);

  it("finds a name's whole token sequence at a position, the longest first", () => {
    const prompt = [5, 10, 11, 6, 20, 21, 22, 20, 21, 7, 20];
    expect(matcher.at(prompt, 1)).toEqual({ value: "easynegative", length: 2 });
    expect(matcher.at(prompt, 4)).toEqual({ value: "bad-hands-v2", length: 3 });
    expect(matcher.at(prompt, 7)).toEqual({ value: "bad-hands", length: 2 });
    // At the end only the one-token name still fits.
    expect(matcher.at(prompt, 10)).toEqual({ value: "bad", length: 1 });
  });

  it("finds nothing where the sequence is incomplete or absent", () => {
    expect(matcher.at([10, 12], 0)).toBeUndefined();
    expect(matcher.at([10], 0)).toBeUndefined();
    expect(matcher.at([5, 6], 1)).toBeUndefined();
    expect(matcher.at(Int32Array.from([11, 10, 11]), 1)).toEqual({ value: "easynegative", length: 2 });
  });
});
