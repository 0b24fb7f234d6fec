import type { Mat } from "@techstark/opencv-js";
import { roundHalfEven } from "../schedulers/numpy-numerics.js";
import type { MatScope } from "./opencv.js";

/** An image scaled for a preprocessor and padded for it, and the size to cut its output back to. */
export interface PaddedInput {
  readonly padded: Mat;
  readonly width: number;
  readonly height: number;
}

/**
 * The ControlNet extension's `resize_image_with_pad`: the short side scaled to `resolution` (bicubic when
 * enlarging, area averaging otherwise), sides rounded half to even as NumPy does, then the right and bottom
 * edges repeated up to multiples of 64. Preprocessors run on the padded image and cut the pad off after.
 */
export function resizeWithPad(scope: MatScope, src: Mat, resolution: number): PaddedInput {
  const { cv } = scope;
  const k = resolution / Math.min(src.rows, src.cols);
  const height = roundHalfEven(src.rows * k);
  const width = roundHalfEven(src.cols * k);
  const resized = scope.empty();
  cv.resize(src, resized, new cv.Size(width, height), 0, 0, k > 1 ? cv.INTER_CUBIC : cv.INTER_AREA);
  const padded = scope.empty();
  cv.copyMakeBorder(resized, padded, 0, pad64(height), 0, pad64(width), cv.BORDER_REPLICATE);
  return { padded, width, height };
}

function pad64(x: number): number {
  return Math.ceil(x / 64) * 64 - x;
}
