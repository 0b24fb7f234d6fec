import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { checkIntegerInRange, checkOneOf } from "../validation/check-number.js";

export const INPUT_FORMATS = ["png", "jpeg", "webp", "avif"] as const;
export type InputFormat = (typeof INPUT_FORMATS)[number];

/** What an untrusted input image may be; checked on the header before any pixel is decoded. */
export interface ImageLimits {
  readonly maxBytes: number;
  readonly maxWidth: number;
  readonly maxHeight: number;
  /** Width x height; also handed to libvips as `limitInputPixels`. */
  readonly maxPixels: number;
  readonly formats: readonly InputFormat[];
}

/** Room for img2img/inpaint inputs at 4096x4096 (64 MiB as RGBA), far under a decompression bomb. */
export const DEFAULT_IMAGE_LIMITS: ImageLimits = {
  maxBytes: 32 * 1024 * 1024,
  maxWidth: 8192,
  maxHeight: 8192,
  maxPixels: 4096 * 4096,
  formats: INPUT_FORMATS,
};

/** Fills unset limits from the defaults and validates them (field `limits.…`). */
export function resolveImageLimits(limits: Partial<ImageLimits> = {}): ImageLimits {
  const merged = { ...DEFAULT_IMAGE_LIMITS, ...limits };
  checkIntegerInRange("limits.maxBytes", merged.maxBytes, 1, 2 ** 31 - 1);
  checkIntegerInRange("limits.maxWidth", merged.maxWidth, 1, 65_535);
  checkIntegerInRange("limits.maxHeight", merged.maxHeight, 1, 65_535);
  checkIntegerInRange("limits.maxPixels", merged.maxPixels, 1, 2 ** 31 - 1);
  if (!Array.isArray(merged.formats) || merged.formats.length === 0) {
    throw new InvalidArgumentError("limits.formats", "must list at least one format");
  }
  for (const [i, format] of merged.formats.entries())
    checkOneOf(`limits.formats[${i}]`, format, INPUT_FORMATS);
  return merged;
}
