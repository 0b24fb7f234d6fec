import { describe, expect, it } from "vitest";
import { vaeOutputToRgb8, vaeOutputToRgb8InTurns } from "../../src/pipeline/pixels.js";

describe("VAE output to RGB8", () => {
  it("rounds half to even after clamping, as diffusers' numpy does", () => {
    // Planes R [-1, 0], G [1, 2], B [-3, 1/255]; (x * 0.5 + 0.5) * 255: -1 → 0, 1 → 255, 0 → 127.5 → 128
    // (half to even), beyond ±1 clamped; interleaved per pixel.
    const rgb = vaeOutputToRgb8(Float32Array.from([-1, 0, 1, 2, -3, 1 / 255]), 1, 2);
    expect([...rgb]).toEqual([0, 255, 0, 128, 255, 128]);
  });

  it("gives the same bytes converted in turns of the event loop, across slices and channels", async () => {
    const height = 700;
    const width = 600; // 420,000 pixels a plane: two slices each
    const sample = Float32Array.from({ length: 3 * height * width }, (_, i) => Math.sin(i / 7) * 1.3);
    const inTurns = await vaeOutputToRgb8InTurns(sample, height, width);
    expect(Buffer.from(inTurns).equals(Buffer.from(vaeOutputToRgb8(sample, height, width)))).toBe(true);
  });
});
