// Linear latent -> RGB approximations (as ComfyUI and A1111 use for live previews): a matrix product per latent
// pixel instead of a VAE decode, so a preview costs far less than a step.
const SDXL_FACTORS = [
  [0.3651, 0.4232, 0.4341],
  [-0.2533, -0.0042, 0.1068],
  [0.1076, 0.1111, -0.0362],
  [-0.3165, -0.2492, -0.2188],
];
const SDXL_BIAS = [0.1084, -0.0175, -0.0011];
const SD1_FACTORS = [
  [0.3512, 0.2297, 0.3227],
  [0.325, 0.4974, 0.235],
  [-0.2829, 0.1762, 0.2721],
  [-0.212, -0.2616, -0.7177],
];

/** RGB8 pixels at latent resolution from the first image of NCHW latents with 4 channels. */
export function latentPreview(
  latents: Float32Array,
  height: number,
  width: number,
  sdxl: boolean,
): Uint8Array {
  const factors = sdxl ? SDXL_FACTORS : SD1_FACTORS;
  const bias = sdxl ? SDXL_BIAS : [0, 0, 0];
  const plane = height * width;
  const out = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      let v = bias[c] ?? 0;
      for (let k = 0; k < 4; k++) v += (latents[k * plane + p] ?? 0) * (factors[k]?.[c] ?? 0);
      out[p * 3 + c] = Math.max(0, Math.min(255, Math.round(((v + 1) / 2) * 255)));
    }
  }
  return out;
}
