import { describe, expect, it } from "vitest";
import { parsePromptAttention } from "../../src/tokenizer/prompt-attention.js";
import { PromptSyntaxError } from "../../src/tokenizer/tokenizer-errors.js";

describe("parsePromptAttention", () => {
  // The doctests of parse_prompt_attention in A1111's modules/prompt_parser.py, verbatim.
  it.each([
    ["normal text", [["normal text", 1.0]]],
    [
      "an (important) word",
      [
        ["an ", 1.0],
        ["important", 1.1],
        [" word", 1.0],
      ],
    ],
    ["(unbalanced", [["unbalanced", 1.1]]],
    ["\\(literal\\]", [["(literal]", 1.0]]],
    ["(unnecessary)(parens)", [["unnecessaryparens", 1.1]]],
    [
      "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
      [
        ["a ", 1.0],
        ["house", 1.5730000000000004],
        [" ", 1.1],
        ["on", 1.0],
        [" a ", 1.1],
        ["hill", 0.55],
        [", sun, ", 1.1],
        ["sky", 1.4641000000000006],
        [".", 1.1],
      ],
    ],
  ])("A1111 doctest: %s", (text, expected) => {
    expect(parsePromptAttention(text)).toEqual(expected);
  });

  it("splits out BREAK only as a whole word", () => {
    expect(parsePromptAttention("a cat BREAK a dog")).toEqual([
      ["a cat", 1],
      ["BREAK", -1],
      ["a dog", 1],
    ]);
    expect(parsePromptAttention("aBREAK b BREAKS")).toEqual([["aBREAK b BREAKS", 1]]);
  });

  it("lets brackets scale a BREAK's marker weight, which makes it plain text as in A1111", () => {
    expect(parsePromptAttention("(a BREAK b)")).toEqual([
      ["a", 1.1],
      ["BREAK", -1.1],
      ["b", 1.1],
    ]);
  });

  it("reads escapes, stray closers and colons as text", () => {
    expect(parsePromptAttention("a \\\\ b")).toEqual([["a \\ b", 1]]);
    expect(parsePromptAttention("a\\b")).toEqual([["ab", 1]]);
    expect(parsePromptAttention("x) y] :1.5) z:w")).toEqual([["x) y] :1.5) z:w", 1]]);
  });

  it("accepts signed and fractional weights", () => {
    expect(parsePromptAttention("(a:-.5) (b:+2)")).toEqual([
      ["a", -0.5],
      [" ", 1],
      ["b", 2],
    ]);
    expect(parsePromptAttention("[(a:1.)]")).toEqual([["a", 1 / 1.1]]);
  });

  it("gives one empty run for an empty prompt", () => {
    expect(parsePromptAttention("")).toEqual([["", 1]]);
  });

  it("refuses a weight that is not a number, naming the field", () => {
    expect(() => parsePromptAttention("(a:1.2.3)", "negative_prompt")).toThrow(PromptSyntaxError);
    try {
      parsePromptAttention("(a:.)", "negative_prompt");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PromptSyntaxError);
      expect((err as PromptSyntaxError).field).toBe("negative_prompt");
      expect((err as PromptSyntaxError).message).toMatch(/invalid attention weight "\."/);
    }
  });
});
