import type { RawImage } from "../../src/image/raw-image.js";

/** A smooth RGB(A) gradient with a hard edge: real structure for codecs and filters to work on. */
export function gradientImage(width: number, height: number, channels: 3 | 4 = 3): RawImage {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      data[i] = Math.round((255 * x) / Math.max(1, width - 1));
      data[i + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      data[i + 2] = x > width / 2 ? 200 : 40;
      if (channels === 4) data[i + 3] = y < height / 2 ? 255 : 128;
    }
  }
  return { data, width, height, channels };
}
