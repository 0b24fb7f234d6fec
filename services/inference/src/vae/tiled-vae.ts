// diffusers' AutoencoderKL.tiled_decode / tiled_encode (`enable_vae_tiling`), step for step: overlapping tiles
// run one at a time, then each tile's first rows and columns are ramped linearly into its upper and left
// neighbours' last ones (blend_v, blend_h, in place and in order, as diffusers' loop mutates its tiles), and
// each tile keeps its top-left `row_limit` square.

/** The overlap between neighbouring tiles, as a fraction of the tile (diffusers' tile_overlap_factor). */
export const TILE_OVERLAP_FACTOR = 0.25;

/** One image's NCHW tensor (N = 1). */
export interface Planes {
  readonly data: Float32Array;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

/** Runs the model on one tile; the output is `scale` times the input's size (8 to decode, 1/8 to encode). */
export type RunTile = (tile: Planes) => Promise<Planes>;

/**
 * diffusers' tiled loop over `input`, whose tiles are `inputTile` square and come out `outputTile` square:
 * tiles start every `int(inputTile · 0.75)`, blend over `int(outputTile · 0.25)` and keep
 * `outputTile − blend` rows and columns. Decoding passes (tile_latent_min_size, tile_sample_min_size),
 * encoding the reverse.
 */
export async function runTiled(
  input: Planes,
  inputTile: number,
  outputTile: number,
  run: RunTile,
): Promise<Planes> {
  const stride = Math.trunc(inputTile * (1 - TILE_OVERLAP_FACTOR));
  const blend = Math.trunc(outputTile * TILE_OVERLAP_FACTOR);
  const limit = outputTile - blend;
  const rows: Planes[][] = [];
  for (let i = 0; i < input.height; i += stride) {
    const row: Planes[] = [];
    for (let j = 0; j < input.width; j += stride)
      row.push(await run(crop(input, i, j, inputTile, inputTile)));
    rows.push(row);
  }
  const channels = rows[0]?.[0]?.channels ?? 0;
  const heights = rows.map((row) => Math.min(limit, row[0]?.height ?? 0));
  const widths = (rows[0] ?? []).map((tile) => Math.min(limit, tile.width));
  const height = heights.reduce((n, h) => n + h, 0);
  const width = widths.reduce((n, w) => n + w, 0);
  const out = new Float32Array(channels * height * width);
  let top = 0;
  for (const [i, row] of rows.entries()) {
    let left = 0;
    for (const [j, tile] of row.entries()) {
      if (i > 0) blendVertical(rows[i - 1]?.[j] as Planes, tile, blend);
      if (j > 0) blendHorizontal(row[j - 1] as Planes, tile, blend);
      paste(out, height, width, tile, top, left, heights[i] as number, widths[j] as number);
      left += widths[j] as number;
    }
    top += heights[i] as number;
  }
  return { data: out, channels, height, width };
}

/** `x[:, :, top : top + h, left : left + w]`, clipped at the edges as slicing is. */
function crop(x: Planes, top: number, left: number, h: number, w: number): Planes {
  const height = Math.min(h, x.height - top);
  const width = Math.min(w, x.width - left);
  const data = new Float32Array(x.channels * height * width);
  for (let c = 0; c < x.channels; c++) {
    for (let y = 0; y < height; y++) {
      const from = (c * x.height + top + y) * x.width + left;
      data.set(x.data.subarray(from, from + width), (c * height + y) * width);
    }
  }
  return { data, channels: x.channels, height, width };
}

/** diffusers' blend_v: b's first rows ramp from a's last ones (b is changed in place). */
export function blendVertical(a: Planes, b: Planes, extent: number): void {
  const e = Math.min(a.height, b.height, extent);
  const width = Math.min(a.width, b.width);
  for (let y = 0; y < e; y++) {
    // torch multiplies a float32 tensor by a Python float in float32.
    const keep = Math.fround(y / e);
    const fade = Math.fround(1 - y / e);
    for (let c = 0; c < b.channels; c++) {
      const ai = (c * a.height + a.height - e + y) * a.width;
      const bi = (c * b.height + y) * b.width;
      for (let x = 0; x < width; x++) {
        b.data[bi + x] = Math.fround(
          Math.fround((a.data[ai + x] as number) * fade) + Math.fround((b.data[bi + x] as number) * keep),
        );
      }
    }
  }
}

/** diffusers' blend_h: b's first columns ramp from a's last ones (b is changed in place). */
export function blendHorizontal(a: Planes, b: Planes, extent: number): void {
  const e = Math.min(a.width, b.width, extent);
  const height = Math.min(a.height, b.height);
  for (let x = 0; x < e; x++) {
    const keep = Math.fround(x / e);
    const fade = Math.fround(1 - x / e);
    for (let c = 0; c < b.channels; c++) {
      for (let y = 0; y < height; y++) {
        const ai = (c * a.height + y) * a.width + a.width - e + x;
        const bi = (c * b.height + y) * b.width + x;
        b.data[bi] = Math.fround(
          Math.fround((a.data[ai] as number) * fade) + Math.fround((b.data[bi] as number) * keep),
        );
      }
    }
  }
}

/** Copies the tile's top-left `h` × `w` into `out` at (top, left). */
function paste(
  out: Float32Array,
  height: number,
  width: number,
  tile: Planes,
  top: number,
  left: number,
  h: number,
  w: number,
): void {
  for (let c = 0; c < tile.channels; c++) {
    for (let y = 0; y < h; y++) {
      const from = (c * tile.height + y) * tile.width;
      out.set(tile.data.subarray(from, from + w), (c * height + top + y) * width + left);
    }
  }
}
