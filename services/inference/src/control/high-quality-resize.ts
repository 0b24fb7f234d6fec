import type { Mat } from "@techstark/opencv-js";
import { lvminThin, nakeNms } from "./edge-thinning.js";
import { MatScope, type OpenCv, pixelsOf } from "./opencv.js";
import { grayToRgb, type RgbImage } from "./rgb-image.js";

/** Distinct RGB colours, counted up to `cap` (the decisions below need no more). */
function distinctColours(image: RgbImage, cap: number): number {
  const seen = new Set<number>();
  const d = image.data;
  for (let i = 0; i < d.length && seen.size < cap; i += 3) {
    seen.add(((d[i] as number) << 16) | ((d[i + 1] as number) << 8) | (d[i + 2] as number));
  }
  return seen.size;
}

/**
 * The ControlNet extension's `high_quality_resize` of a control map (RGB) to width x height. Maps of 3..199
 * colours (segmentation) are resized nearest-neighbour; others by area averaging when the size shrinks and
 * bicubic otherwise. A map of two colours, near black and near white, stays binary: averaged to gray and
 * thresholded with Otsu's method, and when its lines are mostly one pixel wide (canny's) they are thinned
 * back to one pixel (non-maximum suppression, Otsu, Lvmin Zhang's thinning, pruned when enlarging).
 */
export function highQualityResize(cv: OpenCv, map: RgbImage, width: number, height: number): RgbImage {
  if (map.width === width && map.height === height) return map;
  const scope = new MatScope(cv);
  try {
    const x = scope.fromPixels(map.data, map.width, map.height, 3);
    const oldArea = map.width * map.height;
    const smaller = width * height < oldArea;
    const bigger = width * height > oldArea;
    const colours = distinctColours(map, 200);
    let binary = false;
    let onePixelEdge = false;
    if (colours === 2) {
      let min = 255;
      let max = 0;
      for (const v of map.data) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
      binary = min < 16 && max > 240;
      if (binary) onePixelEdge = isOnePixelEdge(scope, x);
    }
    const interpolation =
      colours > 2 && colours < 200 ? cv.INTER_NEAREST : smaller ? cv.INTER_AREA : cv.INTER_CUBIC;
    const y = scope.empty();
    cv.resize(x, y, new cv.Size(width, height), 0, 0, interpolation);
    if (!binary) return { data: pixelsOf(y), width, height };

    // np.mean over the channels in float32, then truncated to uint8.
    const rgb = y.data;
    const gray = new Uint8Array(width * height);
    for (let p = 0; p < gray.length; p++) {
      gray[p] = Math.floor(
        ((rgb[p * 3] as number) + (rgb[p * 3 + 1] as number) + (rgb[p * 3 + 2] as number)) / 3,
      );
    }
    let g = scope.fromPixels(gray, width, height, 1);
    if (onePixelEdge) g = nakeNms(scope, g);
    const thresholded = scope.empty();
    cv.threshold(g, thresholded, 0, 255, cv.THRESH_BINARY + cv.THRESH_OTSU);
    const binaryMap = pixelsOf(thresholded);
    if (onePixelEdge) lvminThin(binaryMap, width, height, bigger);
    return grayToRgb(binaryMap, width, height);
  } finally {
    scope.delete();
  }
}

/**
 * Whether a binary map's lines are mostly one pixel wide: a 3x3 opening removes more than half of its
 * bright values (counted per channel, as the extension's `np.where` on the 3-channel array counts them).
 */
function isOnePixelEdge(scope: MatScope, x: Mat): boolean {
  const { cv } = scope;
  const ones = scope.own(cv.Mat.ones(3, 3, cv.CV_8U));
  const eroded = scope.empty();
  cv.erode(x, eroded, ones);
  const opened = scope.empty();
  cv.dilate(eroded, opened, ones);
  const before = x.data;
  const after = opened.data;
  let removed = 0;
  let bright = 0;
  for (let i = 0; i < before.length; i++) {
    if ((after[i] as number) < (before[i] as number)) removed++;
    if ((before[i] as number) > 127) bright++;
  }
  return removed * 2 > bright;
}
