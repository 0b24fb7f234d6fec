import { describe, expect, it } from "vitest";
import { createGenerator, GeneratorInputError, Mt19937 } from "../../src/random/index.js";

const rounded = (values: Float32Array) => Array.from(values, (v) => Number(v.toFixed(4)));

describe("createGenerator reproduces torch.randn on CPU", () => {
  it("matches the std::mt19937 reference output for seed 5489", () => {
    // The C++ standard fixes the 10000th output of a default-seeded mt19937 at 4123659995.
    const engine = new Mt19937(5489);
    for (let i = 0; i < 9999; i++) engine.nextUint32();
    expect(engine.nextUint32()).toBe(4123659995);
  });

  it("torch.manual_seed(0); torch.randn(4) (serial path, < 16 values)", () => {
    expect(rounded(createGenerator(0).randn(4))).toEqual([1.541, -0.2934, -2.1788, 0.5684]);
  });

  it("torch.manual_seed(0); torch.randn(2, 3) and manual_seed(42); torch.randn(2, 3)", () => {
    expect(rounded(createGenerator(0).randn(6))).toEqual([1.541, -0.2934, -2.1788, 0.5684, -1.0845, -1.3986]);
    expect(rounded(createGenerator(42).randn(6))).toEqual([0.3367, 0.1288, 0.2345, 0.2303, -1.1229, -0.1863]);
  });

  it("torch.manual_seed(0); torch.randn(16) (vectorised normal_fill path)", () => {
    expect(rounded(createGenerator(0).randn(16))).toEqual([
      -1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.692, -0.316, -2.1152, 0.3223, -1.2633, 0.35, 0.3081,
      0.1198, 1.2377, 1.1168, -0.2473,
    ]);
  });

  it("torch.manual_seed(0); torch.randn(8, 3): the last 16 values are redrawn when n % 16 != 0", () => {
    expect(rounded(createGenerator(0).randn(24))).toEqual([
      -1.1258, -1.1524, -0.2506, -0.4339, 0.8487, 0.692, -0.316, -2.1152, 0.4681, -0.1577, 1.4437, 0.266,
      0.1665, 0.8744, -0.1435, -0.1116, 0.9318, 1.259, 2.005, 0.0537, 0.6181, -0.4128, -0.8411, -2.316,
    ]);
  });

  it("uses the low 32 bits of a 64-bit seed, as torch's mt19937 does", () => {
    const big = createGenerator((1n << 40n) + 7n).randn(20);
    expect(big).toEqual(createGenerator(7).randn(20));
    expect(createGenerator((1n << 40n) + 7n).seed).toBe((1n << 40n) + 7n);
  });

  it("keeps torch's cached second normal between small draws", () => {
    const g = createGenerator(0);
    const oneByOne = [g.randn(1)[0], g.randn(1)[0], g.randn(1)[0]];
    expect(Float32Array.from(oneByOne as number[])).toEqual(createGenerator(0).randn(3));
  });

  it("restores a saved state and continues bit-identically", () => {
    const g = createGenerator(1234);
    g.randn(777);
    g.randn(3); // leaves a cached normal behind
    const state = JSON.parse(JSON.stringify(g.getState()));
    const expected = [g.randn(5), g.randn(100)];
    const resumed = createGenerator(1234);
    resumed.setState(state);
    expect([resumed.randn(5), resumed.randn(100)]).toEqual(expected);
  });

  it("rejects bad seeds and foreign states with a field name", () => {
    expect(() => createGenerator(-1)).toThrow(GeneratorInputError);
    expect(() => createGenerator(1.5)).toThrow(/seed: must be an integer/);
    expect(() => createGenerator(1n << 64n)).toThrow(/seed: must be in \[0, 2\^64\)/);
    expect(() => createGenerator(0).randn(-1)).toThrow(/count/);
    const state = createGenerator(1).getState();
    expect(() => createGenerator(2).setState(state)).toThrow(/generator_state: was saved from seed 1/);
    expect(() => createGenerator(1).setState({ ...state, words: [1, 2] })).toThrow(
      /generator_state: .*624 words/,
    );
    expect(() => createGenerator(1).setState({ ...state, algorithm: "philox" } as never)).toThrow(
      /algorithm/,
    );
  });
});
