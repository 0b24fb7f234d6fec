const f32 = Math.fround;

export interface GuidanceSettings {
  /** Classifier-free guidance scale; guidance runs only when it is above 1. */
  readonly scale: number;
  /** diffusers' `guidance_rescale` (0 = off). */
  readonly rescale: number;
}

/**
 * The noise prediction for image `image` of a UNet batch of `images` images. With guidance the batch holds
 * the unconditional rows first and the conditional rows after them (diffusers' `torch.cat([negative,
 * positive])`), and this is `uncond + scale * (text - uncond)`, then `rescale_noise_cfg` when asked, in
 * float32 as torch computes them. Returns a new array, which a multistep scheduler may keep.
 */
export function guidedNoise(
  unetOutput: Float32Array,
  image: number,
  images: number,
  guidance: GuidanceSettings | undefined,
): Float32Array {
  const size = unetOutput.length / (guidance ? 2 * images : images);
  const textAt = (guidance ? images + image : image) * size;
  if (!guidance) return unetOutput.slice(textAt, textAt + size);
  const uncondAt = image * size;
  const scale = f32(guidance.scale);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const u = unetOutput[uncondAt + i] as number;
    out[i] = u + f32(scale * f32((unetOutput[textAt + i] as number) - u));
  }
  if (guidance.rescale > 0)
    rescaleNoiseCfg(out, unetOutput.subarray(textAt, textAt + size), guidance.rescale);
  return out;
}

/**
 * diffusers' rescale_noise_cfg (Lin et al. 2023, section 3.4): scale the guided prediction to the standard
 * deviation of the text prediction, then mix with the unscaled one. torch's std is unbiased and accumulates
 * in double; the products are float32.
 */
export function rescaleNoiseCfg(guided: Float32Array, text: Float32Array, rescale: number): void {
  const factor = f32(f32(std(text)) / f32(std(guided)));
  const keep = f32(rescale);
  const mix = f32(1 - rescale);
  for (let i = 0; i < guided.length; i++) {
    const g = guided[i] as number;
    guided[i] = f32(keep * f32(g * factor)) + f32(mix * g);
  }
}

function std(x: Float32Array): number {
  let mean = 0;
  for (let i = 0; i < x.length; i++) mean += x[i] as number;
  mean /= x.length;
  let sq = 0;
  for (let i = 0; i < x.length; i++) sq += ((x[i] as number) - mean) ** 2;
  return Math.sqrt(sq / (x.length - 1));
}
