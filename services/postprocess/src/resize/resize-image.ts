import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { type RawImage, sharpFromRaw, toRawImage } from "../image/raw-image.js";
import { checkIntegerInRange, checkNumberInRange, checkOneOf } from "../validation/check-number.js";

export const RESIZE_KERNELS = ["lanczos3", "lanczos2", "mitchell", "cubic", "linear", "nearest"] as const;
export type ResizeKernel = (typeof RESIZE_KERNELS)[number];

/** Either `scale` (2 and 4 are the usual upscales) or both `width` and `height`. */
export interface ResizeOptions {
  readonly scale?: number;
  readonly width?: number;
  readonly height?: number;
  /**
   * Default lanczos3, sharp's default. libvips applies the kernel itself when shrinking; when enlarging
   * it interpolates with what the kernel implies: nearest → nearest, linear → bilinear, and every
   * other kernel → bicubic (so lanczos3, lanczos2, mitchell and cubic upscale identically).
   */
  readonly kernel?: ResizeKernel;
  /** Output width x height allowed; default 8192 x 8192 (256 MiB as RGBA). */
  readonly maxOutputPixels?: number;
}

export const MIN_SCALE = 0.01;
export const MAX_SCALE = 8;
export const DEFAULT_MAX_OUTPUT_PIXELS = 8192 * 8192;

/** Resamples to the requested size with a sharp kernel; the output has exactly that size. */
export async function resizeImage(image: RawImage, options: ResizeOptions): Promise<RawImage> {
  const kernel = checkOneOf("kernel", options.kernel ?? "lanczos3", RESIZE_KERNELS);
  const { width, height } = targetSize(image, options);
  return toRawImage(sharpFromRaw(image).resize(width, height, { kernel, fit: "fill" }));
}

function targetSize(image: RawImage, options: ResizeOptions): { width: number; height: number } {
  const maxPixels = checkIntegerInRange(
    "maxOutputPixels",
    options.maxOutputPixels ?? DEFAULT_MAX_OUTPUT_PIXELS,
    1,
    2 ** 31 - 1,
  );
  const bySize = options.width !== undefined || options.height !== undefined;
  if (bySize === (options.scale !== undefined)) {
    throw new InvalidArgumentError("scale", "give either scale or width and height");
  }
  let width: number;
  let height: number;
  let field: string;
  if (options.scale !== undefined) {
    const scale = checkNumberInRange("scale", options.scale, MIN_SCALE, MAX_SCALE);
    width = Math.max(1, Math.round(image.width * scale));
    height = Math.max(1, Math.round(image.height * scale));
    field = "scale";
  } else {
    if (options.width === undefined || options.height === undefined) {
      throw new InvalidArgumentError(
        options.width === undefined ? "width" : "height",
        "width and height go together",
      );
    }
    width = checkIntegerInRange("width", options.width, 1, 65_535);
    height = checkIntegerInRange("height", options.height, 1, 65_535);
    field = "width";
  }
  if (width * height > maxPixels) {
    throw new InvalidArgumentError(
      field,
      `gives ${width}x${height} (${width * height} pixels); the limit is ${maxPixels}`,
    );
  }
  return { width, height };
}
