import { roundHalfEven } from "../schedulers/numpy-numerics.js";
import { highQualityResize } from "./high-quality-resize.js";
import type { OpenCv } from "./opencv.js";
import type { RgbImage } from "./rgb-image.js";

/** The ControlNet extension's resize modes: "Just Resize", "Crop and Resize", "Resize and Fill". */
export type ControlResizeMode = "just-resize" | "crop-and-resize" | "resize-and-fill";

/** The names the extension shows and writes into infotext. */
export const RESIZE_MODE_LABELS: Record<ControlResizeMode, string> = {
  "just-resize": "Just Resize",
  "crop-and-resize": "Crop and Resize",
  "resize-and-fill": "Resize and Fill",
};

/**
 * A control map fitted to the generation's width x height as the extension's `detectmap_proc` does:
 * stretched ("just-resize"); scaled to cover and cropped evenly ("crop-and-resize"); or scaled to fit,
 * centred on the median colour of the map's border ("resize-and-fill"). Scaled sides round half to even.
 */
export function fitControlMap(
  cv: OpenCv,
  map: RgbImage,
  width: number,
  height: number,
  mode: ControlResizeMode,
): RgbImage {
  if (mode === "just-resize") return highQualityResize(cv, map, width, height);
  const kh = height / map.height;
  const kw = width / map.width;
  const k = mode === "resize-and-fill" ? Math.min(kh, kw) : Math.max(kh, kw);
  const scaled = highQualityResize(cv, map, roundHalfEven(map.width * k), roundHalfEven(map.height * k));
  const out = new Uint8Array(width * height * 3);
  if (mode === "resize-and-fill") {
    const colour = medianBorderColour(map);
    for (let p = 0; p < width * height; p++) out.set(colour, p * 3);
    const top = Math.max(0, Math.floor((height - scaled.height) / 2));
    const left = Math.max(0, Math.floor((width - scaled.width) / 2));
    copyRows(
      scaled,
      0,
      0,
      out,
      width,
      top,
      left,
      Math.min(scaled.width, width - left),
      Math.min(scaled.height, height - top),
    );
  } else {
    const top = Math.max(0, Math.floor((scaled.height - height) / 2));
    const left = Math.max(0, Math.floor((scaled.width - width) / 2));
    copyRows(
      scaled,
      top,
      left,
      out,
      width,
      0,
      0,
      Math.min(width, scaled.width - left),
      Math.min(height, scaled.height - top),
    );
  }
  return { data: out, width, height };
}

/** Copies a w x h block from `src` at (srcTop, srcLeft) into an RGB buffer `outWidth` wide at (top, left). */
function copyRows(
  src: RgbImage,
  srcTop: number,
  srcLeft: number,
  out: Uint8Array,
  outWidth: number,
  top: number,
  left: number,
  w: number,
  h: number,
): void {
  for (let r = 0; r < h; r++) {
    const from = ((srcTop + r) * src.width + srcLeft) * 3;
    out.set(src.data.subarray(from, from + w * 3), ((top + r) * outWidth + left) * 3);
  }
}

/**
 * `np.median` per channel over the first and last rows and columns (corners counted twice, as the extension
 * concatenates them), truncated to uint8: with an even count, the mean of the two middle values.
 */
export function medianBorderColour(map: RgbImage): Uint8Array {
  const { width, height, data } = map;
  const histograms = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)];
  const add = (x: number, y: number) => {
    histograms.forEach((h, c) => {
      const v = data[(y * width + x) * 3 + c] as number;
      h[v] = (h[v] as number) + 1;
    });
  };
  for (let x = 0; x < width; x++) {
    add(x, 0);
    add(x, height - 1);
  }
  for (let y = 0; y < height; y++) {
    add(0, y);
    add(width - 1, y);
  }
  const count = 2 * width + 2 * height;
  return Uint8Array.from(histograms, (h) => {
    const lower = valueAtRank(h, Math.floor((count - 1) / 2));
    const upper = valueAtRank(h, Math.floor(count / 2));
    return Math.trunc((lower + upper) / 2);
  });
}

function valueAtRank(histogram: Uint32Array, rank: number): number {
  let seen = 0;
  for (let v = 0; v < 256; v++) {
    seen += histogram[v] as number;
    if (seen > rank) return v;
  }
  return 255;
}

/**
 * The extension's "Pixel Perfect" preprocessor resolution: the image's short side scaled by the factor
 * the resize mode will apply (the smaller of the two for "resize-and-fill", the larger otherwise).
 */
export function pixelPerfectResolution(
  image: { width: number; height: number },
  width: number,
  height: number,
  mode: ControlResizeMode,
): number {
  const kh = height / image.height;
  const kw = width / image.width;
  const k = mode === "resize-and-fill" ? Math.min(kh, kw) : Math.max(kh, kw);
  return roundHalfEven(k * Math.min(image.height, image.width));
}
