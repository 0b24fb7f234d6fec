/** One tile along one axis, in input pixels. */
export interface AxisTile {
  readonly start: number;
  readonly length: number;
}

/**
 * Tiles of `tile` pixels covering [0, length), neighbours sharing at least `overlap` pixels; the last tile
 * is aligned to the end rather than padded, so every tile but a lone short one has the full size.
 */
export function axisTiles(length: number, tile: number, overlap: number): AxisTile[] {
  if (length <= tile) return [{ start: 0, length }];
  const step = tile - overlap;
  const tiles: AxisTile[] = [];
  let start = 0;
  for (; start + tile < length; start += step) tiles.push({ start, length: tile });
  tiles.push({ start: length - tile, length: tile });
  return tiles;
}

/**
 * Blend weights along one axis, in output pixels (`scale` per input pixel), one array per tile: each
 * tile's weight ramps linearly across the pixels it shares with a neighbour (see `ramp`) and is 1
 * elsewhere, then all are divided by their sum at each pixel. So the weights of the tiles covering a pixel add up to exactly
 * 1, and the 2-D weight of a tile (its x weight times its y weight) does too: seams fade instead of
 * showing, and no weight accumulator is needed.
 */
export function axisBlendWeights(tiles: readonly AxisTile[], scale: number): Float32Array[] {
  const raw = tiles.map((tile, i) => {
    const before = i > 0 ? sharedPixels(tiles[i - 1], tile) * scale : 0;
    const after = i < tiles.length - 1 ? sharedPixels(tile, tiles[i + 1]) * scale : 0;
    const size = tile.length * scale;
    const w = new Float32Array(size);
    for (let p = 0; p < size; p++) w[p] = Math.min(ramp(p, before), ramp(size - 1 - p, after));
    return w;
  });
  const last = tiles[tiles.length - 1];
  const total = new Float64Array(last ? (last.start + last.length) * scale : 0);
  tiles.forEach((tile, i) => {
    const w = raw[i] as Float32Array;
    const offset = tile.start * scale;
    for (let p = 0; p < w.length; p++) total[offset + p] = (total[offset + p] as number) + (w[p] as number);
  });
  return tiles.map((tile, i) => {
    const w = raw[i] as Float32Array;
    for (let p = 0; p < w.length; p++) w[p] = (w[p] as number) / (total[tile.start * scale + p] as number);
    return w;
  });
}

/**
 * Weight at `p` pixels from a tile edge shared over `shared` pixels: it rises across the middle half of
 * the shared span only, so the quarter next to the edge, where the model saw the tile's border instead of
 * the image, barely counts. Never exactly 0, so every pixel keeps a weight.
 */
function ramp(p: number, shared: number): number {
  if (shared === 0) return 1;
  const margin = shared / 4;
  return Math.min(1, Math.max(1e-3, (p + 0.5 - margin) / (shared - 2 * margin)));
}

function sharedPixels(a: AxisTile | undefined, b: AxisTile | undefined): number {
  return a && b ? Math.max(0, a.start + a.length - b.start) : 0;
}
