import type { Image } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { LIMITS } from "@dmesh/spec";
import sharp from "sharp";

/**
 * VAE output (NCHW, about [-1, 1]) to interleaved RGB8 exactly as diffusers' image processor makes it:
 * `(x * 0.5 + 0.5).clamp(0, 1)` in float32, then numpy's `(x * 255).round()`, which rounds half to even.
 */
export function vaeOutputToRgb8(sample: Float32Array, height: number, width: number): Uint8Array {
  const plane = height * width;
  const out = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) toRgb8(sample, out, c, plane, 0, plane);
  return out;
}

/**
 * Values converted before the event loop gets a turn: a 1024² image is 3M values, tens of milliseconds of
 * JavaScript that would otherwise delay health checks and cancels as long.
 */
const VALUES_PER_TURN = 1 << 18;

/** `vaeOutputToRgb8`, letting the event loop turn between slices of the image. */
export async function vaeOutputToRgb8InTurns(
  sample: Float32Array,
  height: number,
  width: number,
): Promise<Uint8Array> {
  const plane = height * width;
  const out = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let from = 0; from < plane; from += VALUES_PER_TURN) {
      if (c > 0 || from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      toRgb8(sample, out, c, plane, from, Math.min(plane, from + VALUES_PER_TURN));
    }
  }
  return out;
}

/** Channel `c`'s pixels [from, to) of planar `sample` into interleaved `out`. */
function toRgb8(
  sample: Float32Array,
  out: Uint8Array,
  c: number,
  plane: number,
  from: number,
  to: number,
): void {
  const f32 = Math.fround;
  let o = from * 3 + c;
  for (let i = c * plane + from, end = c * plane + to; i < end; i++, o += 3) {
    let v = f32((sample[i] as number) * 0.5 + 0.5);
    v = Math.min(1, Math.max(0, v));
    const scaled = f32(v * 255);
    let rounded = Math.round(scaled);
    if (rounded - scaled === 0.5 && (rounded & 1) === 1) rounded--;
    out[o] = rounded;
  }
}

/** Decodes an input image (raw or encoded) to `channels` interleaved 8-bit channels at width x height. */
export async function decodeInputImage(
  image: Image,
  width: number,
  height: number,
  channels: 1 | 3,
  field: string,
): Promise<Uint8Array> {
  try {
    const input =
      image.encoding === ImageEncoding.RAW
        ? sharp(image.data, {
            raw: { width: image.width, height: image.height, channels: image.channels as 1 | 3 | 4 },
            limitInputPixels: LIMITS.maxPixels * 4,
          })
        : sharp(image.data, { limitInputPixels: LIMITS.maxPixels * 4, failOn: "error" });
    let pipeline = input.removeAlpha().resize(width, height, { fit: "fill", kernel: "lanczos3" });
    pipeline = channels === 1 ? pipeline.toColourspace("b-w") : pipeline.toColourspace("srgb");
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== channels) {
      // sharp keeps 3 channels for some gray inputs; reduce to the first.
      const out = new Uint8Array(width * height * channels);
      for (let p = 0; p < width * height; p++) {
        for (let c = 0; c < channels; c++) out[p * channels + c] = data[p * info.channels + c] ?? 0;
      }
      return out;
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (err) {
    throw new InvalidArgumentError(field, `is not a readable image: ${(err as Error).message}`);
  }
}

/** Interleaved RGB8 to NCHW float in [-1, 1], the VAE encoder's input. */
export function rgb8ToVaeInput(rgb: Uint8Array, height: number, width: number): Float32Array {
  const plane = height * width;
  const out = new Float32Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) out[c * plane + p] = ((rgb[p * 3 + c] ?? 0) / 255) * 2 - 1;
  }
  return out;
}

/** A gray mask at full size to a binary {0,1} mask (white = repaint), as diffusers binarizes it. */
export function binarizeMask(gray: Uint8Array): Float32Array {
  return Float32Array.from(gray, (v) => (v / 255 >= 0.5 ? 1 : 0));
}

/** Nearest-neighbour downscale of a [H, W] mask to the latent grid, as torch's default interpolate does. */
export function maskToLatentGrid(
  mask: Float32Array,
  height: number,
  width: number,
  lh: number,
  lw: number,
): Float32Array {
  const out = new Float32Array(lh * lw);
  for (let y = 0; y < lh; y++) {
    const sy = Math.floor((y * height) / lh);
    for (let x = 0; x < lw; x++) out[y * lw + x] = mask[sy * width + Math.floor((x * width) / lw)] ?? 0;
  }
  return out;
}
