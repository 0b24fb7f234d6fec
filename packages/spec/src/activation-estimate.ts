// Peak float32 values one UNet evaluation of an SDXL-shaped network holds per latent pixel (its widest
// blocks at 1280 channels, a few live at once); x2 for the guided batch.
const ACTIVATION_FLOATS_PER_LATENT_PIXEL = 1280 * 6;

/** Rough peak activation bytes of one image's denoising step at width x height pixels. */
export function estimateActivationBytes(width: number, height: number): number {
  return Math.round((width / 8) * (height / 8) * ACTIVATION_FLOATS_PER_LATENT_PIXEL * 4 * 2);
}
