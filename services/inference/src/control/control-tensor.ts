import type { RgbImage } from "./rgb-image.js";

/**
 * A control map as a ControlNet's `controlnet_cond` input: float32 [batch, 3, H, W], RGB in [0, 1]
 * (`x / 255`), as diffusers' ControlNet pipelines and the A1111 extension prepare it; the one map repeated
 * for every row of the batch (classifier-free guidance rows included).
 */
export function controlTensor(map: RgbImage, batch: number): Float32Array {
  const plane = map.width * map.height;
  const out = new Float32Array(batch * 3 * plane);
  const d = map.data;
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    for (let p = 0; p < plane; p++) out[base + p] = (d[p * 3 + c] as number) / 255;
  }
  for (let b = 1; b < batch; b++) out.copyWithin(b * 3 * plane, 0, 3 * plane);
  return out;
}
