import type { RawImage } from "../image/raw-image.js";
import { type AxisTile, axisBlendWeights, axisTiles } from "./tile-grid.js";
import type { UpscaleModel } from "./upscale-model.js";

export interface TiledUpscaleOptions {
  /** Tile side in input pixels (a model with a fixed input size uses that instead). */
  readonly tileSize: number;
  /** Input pixels neighbouring tiles share, blended across; at most half a tile. */
  readonly overlap: number;
  /** Checked before every tile: onnxruntime cannot stop a run, so a tile is the unit of cancellation. */
  readonly signal?: AbortSignal;
}

/**
 * Runs `model` over the RGB of `image` tile by tile and returns the RGB result (alpha is the caller's).
 * Tiles overlap and are cross-faded (see axisBlendWeights), so no seam shows. Memory beyond the input and
 * the output is one tile and one band of float rows as tall as an output tile: bounded by the tile size,
 * not by the image.
 */
export async function upscaleTiled(
  model: UpscaleModel,
  image: RawImage,
  options: TiledUpscaleOptions,
): Promise<RawImage> {
  const s = model.scale;
  const tileH = model.fixedSize?.height ?? roundDown(options.tileSize, model.sizeMultiple);
  const tileW = model.fixedSize?.width ?? roundDown(options.tileSize, model.sizeMultiple);
  const rows = axisTiles(image.height, tileH, Math.min(options.overlap, Math.floor(tileH / 2)));
  const cols = axisTiles(image.width, tileW, Math.min(options.overlap, Math.floor(tileW / 2)));
  const rowWeights = axisBlendWeights(rows, s);
  const colWeights = axisBlendWeights(cols, s);

  const outW = image.width * s;
  const outH = image.height * s;
  const out = new Uint8Array(outW * outH * 3);
  const band = new FloatBand(Math.max(...rows.map((r) => r.length)) * s, outW, out);
  for (const [j, row] of rows.entries()) {
    // Rows above this tile row get no more contributions.
    await band.flushTo(row.start * s);
    for (const [i, col] of cols.entries()) {
      options.signal?.throwIfAborted();
      const padH = paddedSide(row.length, model.fixedSize?.height, model.sizeMultiple);
      const padW = paddedSide(col.length, model.fixedSize?.width, model.sizeMultiple);
      const data = await model.runTile(readTile(image, col, row, padW, padH), padH, padW);
      const tile = { data, width: padW * s, height: padH * s };
      await band.add(
        tile,
        col.start * s,
        row.start * s,
        colWeights[i] as Float32Array,
        rowWeights[j] as Float32Array,
      );
    }
  }
  await band.flushTo(outH);
  return { data: out, width: outW, height: outH, channels: 3 };
}

/**
 * Values a blend or a flush handles before it lets the event loop turn (a few milliseconds of work): a wide
 * output's band is tens of millions of values, and the service must answer health and cancels meanwhile.
 */
const VALUES_PER_TURN = 1 << 20;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Accumulates weighted tile outputs for the output rows still open, in a ring of rows. */
class FloatBand {
  private readonly sums: Float32Array;
  private readonly pixels: Uint8ClampedArray;
  private flushed = 0;

  constructor(
    private readonly rows: number,
    private readonly width: number,
    out: Uint8Array,
  ) {
    this.sums = new Float32Array(rows * width * 3);
    // Clamped writes round and saturate, as converting [0, 1] floats to 8 bits needs.
    this.pixels = new Uint8ClampedArray(out.buffer, out.byteOffset, out.byteLength);
  }

  /** Adds a planar RGB tile output at (x0, y0) weighted by wx × wy, which also span its unpadded part. */
  async add(
    tile: { data: Float32Array; width: number; height: number },
    x0: number,
    y0: number,
    wx: Float32Array,
    wy: Float32Array,
  ): Promise<void> {
    const { data, width: tileW } = tile;
    const plane = tileW * tile.height;
    const rowsPerTurn = Math.max(1, Math.floor(VALUES_PER_TURN / (wx.length * 3)));
    for (let y = 0; y < wy.length; y++) {
      if (y > 0 && y % rowsPerTurn === 0) await nextTurn();
      const ring = ((y0 + y) % this.rows) * this.width;
      const weightY = wy[y] as number;
      for (let x = 0; x < wx.length; x++) {
        const w = weightY * (wx[x] as number);
        const src = y * tileW + x;
        const dst = (ring + x0 + x) * 3;
        const sums = this.sums;
        sums[dst] = (sums[dst] as number) + w * (data[src] as number);
        sums[dst + 1] = (sums[dst + 1] as number) + w * (data[plane + src] as number);
        sums[dst + 2] = (sums[dst + 2] as number) + w * (data[2 * plane + src] as number);
      }
    }
  }

  /** Writes the finished output rows [flushed, end) as 8-bit pixels and frees their ring slots. */
  async flushTo(end: number): Promise<void> {
    const rowValues = this.width * 3;
    const rowsPerTurn = Math.max(1, Math.floor(VALUES_PER_TURN / rowValues));
    for (let y = this.flushed; y < end; y++) {
      if (y > this.flushed && (y - this.flushed) % rowsPerTurn === 0) await nextTurn();
      const from = (y % this.rows) * rowValues;
      const to = y * rowValues;
      for (let k = 0; k < rowValues; k++) this.pixels[to + k] = (this.sums[from + k] as number) * 255;
      this.sums.fill(0, from, from + rowValues);
    }
    this.flushed = Math.max(this.flushed, end);
  }
}

/** The tile's RGB as planar floats in [0, 1], edge pixels repeated out to the padded size. */
function readTile(image: RawImage, col: AxisTile, row: AxisTile, padW: number, padH: number): Float32Array {
  const plane = padW * padH;
  const pixels = new Float32Array(3 * plane);
  const { data, width, channels } = image;
  for (let y = 0; y < padH; y++) {
    const sy = row.start + Math.min(y, row.length - 1);
    for (let x = 0; x < padW; x++) {
      const src = (sy * width + col.start + Math.min(x, col.length - 1)) * channels;
      const dst = y * padW + x;
      pixels[dst] = (data[src] as number) / 255;
      pixels[plane + dst] = (data[src + 1] as number) / 255;
      pixels[2 * plane + dst] = (data[src + 2] as number) / 255;
    }
  }
  return pixels;
}

function paddedSide(length: number, fixed: number | undefined, multiple: number): number {
  return fixed ?? Math.ceil(length / multiple) * multiple;
}

function roundDown(value: number, multiple: number): number {
  return Math.max(multiple, Math.floor(value / multiple) * multiple);
}
