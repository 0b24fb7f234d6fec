/** An 8-bit RGB image, interleaved and row-major: the layout every preprocessor takes and returns. */
export interface RgbImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/**
 * 1, 2, 3 or 4 interleaved channels to RGB as the ControlNet extension's `HWC3` makes them: gray is
 * repeated, and alpha is composited over white in float32 and truncated (`color * a + 255 * (1 - a)`).
 */
export function toRgb(data: Uint8Array, width: number, height: number, channels: number): RgbImage {
  if (channels === 3) return { data, width, height };
  const f32 = Math.fround;
  const pixels = width * height;
  const out = new Uint8Array(pixels * 3);
  const alphaChannel = channels === 2 || channels === 4;
  for (let p = 0; p < pixels; p++) {
    const i = p * channels;
    const alpha = alphaChannel ? f32((data[i + channels - 1] as number) / 255) : 1;
    for (let c = 0; c < 3; c++) {
      const v = data[channels >= 3 ? i + c : i] as number;
      out[p * 3 + c] = alphaChannel
        ? Math.min(255, Math.trunc(f32(f32(v * alpha) + f32(255 * f32(1 - alpha)))))
        : v;
    }
  }
  return { data: out, width, height };
}

/** One gray channel repeated into RGB (`cv2.COLOR_GRAY2RGB`). */
export function grayToRgb(gray: Uint8Array, width: number, height: number): RgbImage {
  const out = new Uint8Array(gray.length * 3);
  for (let p = 0; p < gray.length; p++) out.fill(gray[p] as number, p * 3, p * 3 + 3);
  return { data: out, width, height };
}
