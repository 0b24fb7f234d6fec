import { MatScope, type OpenCv, pixelsOf } from "./opencv.js";
import { resizeWithPad } from "./resize-with-pad.js";
import { grayToRgb, type RgbImage } from "./rgb-image.js";

/**
 * The ControlNet extension's `canny` preprocessor: the image scaled and padded for `resolution`, then
 * `cv2.Canny(image, low, high)` with OpenCV's defaults (3x3 Sobel, L1 gradient) on the RGB image itself:
 * OpenCV takes, per pixel, the channel with the strongest gradient. White edges on black, as RGB.
 */
export function cannyMap(
  cv: OpenCv,
  image: RgbImage,
  resolution: number,
  low: number,
  high: number,
): RgbImage {
  const scope = new MatScope(cv);
  try {
    const src = scope.fromPixels(image.data, image.width, image.height, 3);
    const { padded, width, height } = resizeWithPad(scope, src, resolution);
    const edges = scope.empty();
    cv.Canny(padded, edges, low, high, 3, false);
    // copyTo, not clone: opencv.js's clone of a roi keeps the parent's row stride.
    const cropped = scope.empty();
    scope.own(edges.roi(new cv.Rect(0, 0, width, height))).copyTo(cropped);
    return grayToRgb(pixelsOf(cropped), width, height);
  } finally {
    scope.delete();
  }
}
