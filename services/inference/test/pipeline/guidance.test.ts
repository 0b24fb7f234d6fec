import { describe, expect, it } from "vitest";
import { guidedNoise } from "../../src/pipeline/guidance.js";

const std = (x: Float32Array) => {
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  return Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / (x.length - 1));
};

describe("classifier-free guidance", () => {
  // Two images, four values each: rows [uncond 0, uncond 1, text 0, text 1].
  const output = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13, 1, 1, 1, 1, 20, 30, 40, 50]);

  it("is uncond + scale * (text - uncond), per image of the batch", () => {
    expect([...guidedNoise(output, 0, 2, { scale: 2, rescale: 0 })]).toEqual([2, 1, 0, -1]);
    expect([...guidedNoise(output, 1, 2, { scale: 2, rescale: 0 })]).toEqual([30, 49, 68, 87]);
  });

  it("without guidance takes each image's own row, as a copy", () => {
    const rows = Float32Array.from([1, 2, 3, 4]);
    const second = guidedNoise(rows, 1, 2, undefined);
    expect([...second]).toEqual([3, 4]);
    second[0] = 99;
    expect(rows[2]).toBe(3);
  });

  it("guidance rescale 1 gives the text prediction's standard deviation; 0.5 mixes halfway", () => {
    const plain = guidedNoise(output, 1, 2, { scale: 7, rescale: 0 });
    const full = guidedNoise(output, 1, 2, { scale: 7, rescale: 1 });
    const half = guidedNoise(output, 1, 2, { scale: 7, rescale: 0.5 });
    const text = output.subarray(12, 16);
    expect(std(full)).toBeCloseTo(std(text), 4);
    for (const [i, v] of full.entries()) expect(half[i]).toBeCloseTo((v + (plain[i] as number)) / 2, 4);
  });
});
