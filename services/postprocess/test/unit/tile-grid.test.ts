import { describe, expect, it } from "vitest";
import { axisBlendWeights, axisTiles } from "../../src/upscale/tile-grid.js";

describe("axisTiles", () => {
  it("covers the axis with full tiles sharing at least the overlap, the last aligned to the end", () => {
    for (const [length, tile, overlap] of [
      [1000, 256, 16],
      [300, 256, 16],
      [257, 128, 32],
      [512, 128, 0],
    ] as const) {
      const tiles = axisTiles(length, tile, overlap);
      expect(tiles[0]?.start).toBe(0);
      expect(tiles.at(-1)).toEqual({ start: length - tile, length: tile });
      for (let i = 1; i < tiles.length; i++) {
        const prev = tiles[i - 1];
        const cur = tiles[i];
        if (!prev || !cur) throw new Error("missing tile");
        expect(cur.length).toBe(tile);
        expect(
          prev.start + prev.length - cur.start,
          `${length}/${tile}/${overlap} tile ${i}`,
        ).toBeGreaterThanOrEqual(overlap);
      }
    }
  });

  it("uses one short tile for an axis shorter than a tile", () => {
    expect(axisTiles(100, 256, 16)).toEqual([{ start: 0, length: 100 }]);
  });
});

describe("axisBlendWeights", () => {
  it("adds up to exactly 1 at every output pixel and ramps across shared pixels", () => {
    for (const [length, tile, overlap, scale] of [
      [1000, 256, 16, 2],
      [300, 256, 16, 4],
      [70, 32, 8, 1],
    ] as const) {
      const tiles = axisTiles(length, tile, overlap);
      const weights = axisBlendWeights(tiles, scale);
      const total = new Float64Array(length * scale);
      tiles.forEach((t, i) => {
        const w = weights[i];
        if (!w) throw new Error("missing weights");
        expect(w.length).toBe(t.length * scale);
        w.forEach((v, p) => {
          expect(v).toBeGreaterThan(0);
          total[t.start * scale + p] = (total[t.start * scale + p] as number) + v;
        });
      });
      for (const sum of total) expect(sum).toBeCloseTo(1, 6);
      // The first tile starts at full weight and fades out where the second takes over.
      const first = weights[0] as Float32Array;
      expect(first[0]).toBe(1);
      expect(first.at(-1)).toBeLessThan(0.1);
    }
  });
});
