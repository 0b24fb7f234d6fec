import { InvalidArgumentError } from "@dmesh/runtime/errors";
import sharp, { type Sharp } from "sharp";
import { checkIntegerInRange } from "../validation/check-number.js";

/** Interleaved 8-bit pixels, row-major, as a VAE decoder's output becomes after scaling to 0..255. */
export interface RawImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 3 | 4;
}

/** Larger than any image we produce or accept; keeps width * height * channels a safe integer. */
const MAX_SIDE = 65_535;

/** Throws an InvalidArgumentError (field `${field}.…`) unless the dimensions and the buffer agree. */
export function checkRawImage(image: RawImage, field = "image"): RawImage {
  checkIntegerInRange(`${field}.width`, image.width, 1, MAX_SIDE);
  checkIntegerInRange(`${field}.height`, image.height, 1, MAX_SIDE);
  if (image.channels !== 3 && image.channels !== 4) {
    throw new InvalidArgumentError(`${field}.channels`, `must be 3 (RGB) or 4 (RGBA), got ${image.channels}`);
  }
  const expected = image.width * image.height * image.channels;
  if (image.data.byteLength !== expected) {
    throw new InvalidArgumentError(
      `${field}.data`,
      `holds ${image.data.byteLength} bytes but ${image.width}x${image.height}x${image.channels} needs ${expected}`,
    );
  }
  return image;
}

/** A sharp pipeline reading the pixels (validated first). */
export function sharpFromRaw(image: RawImage, field = "image"): Sharp {
  checkRawImage(image, field);
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } });
}

/** Runs `pipeline` to 8-bit interleaved pixels. */
export async function toRawImage(pipeline: Sharp): Promise<RawImage> {
  const { data, info } = await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 && info.channels !== 4) {
    // Our pipelines only produce sRGB with or without alpha; anything else is a bug upstream.
    throw new Error(`expected 3 or 4 channels from sharp, got ${info.channels}`);
  }
  return { data, width: info.width, height: info.height, channels: info.channels };
}
