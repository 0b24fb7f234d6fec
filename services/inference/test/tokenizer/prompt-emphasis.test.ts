import { describe, expect, it } from "vitest";
import { applyPromptWeights } from "../../src/tokenizer/prompt-emphasis.js";

const mean = (values: Float32Array) => values.reduce((sum, v) => sum + v, 0) / values.length;

describe("applyPromptWeights", () => {
  it("scales each token by its weight, then restores the original mean", () => {
    const hidden = Float32Array.from([1, 2, 3, 4, 5, 6]); // 3 tokens x 2 dims, mean 3.5
    const out = applyPromptWeights(hidden, [1, 2, 1]);
    // Weighted: [1,2, 6,8, 5,6], mean 14/3; scaled by 3.5 / (14/3) = 0.75.
    expect(Array.from(out)).toEqual([0.75, 1.5, 4.5, 6, 3.75, 4.5]);
    expect(mean(out)).toBeCloseTo(3.5, 6);
    expect(Array.from(hidden)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("leaves hidden states unchanged when every weight is 1", () => {
    const hidden = Float32Array.from([0.5, -1.25, 3, 7]);
    expect(Array.from(applyPromptWeights(hidden, Float32Array.from([1, 1])))).toEqual([0.5, -1.25, 3, 7]);
  });

  it("refuses hidden states that do not split into one row per weight", () => {
    expect(() => applyPromptWeights(new Float32Array(5), [1, 1])).toThrow(RangeError);
    expect(() => applyPromptWeights(new Float32Array(4), [])).toThrow(RangeError);
  });
});
