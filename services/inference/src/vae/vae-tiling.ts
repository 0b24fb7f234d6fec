import type { Vae } from "./vae.js";

/** When the VAE runs in tiles (VAE_TILE_ABOVE, VAE_TILE_SIZE). */
export interface VaeTilingSettings {
  /** Images of more pixels than this decode and encode in tiles; 0 = never because of size. */
  readonly tileAbovePixels: number;
  /** The tile's side in pixels (a multiple of 32); 0 = the VAE config's sample_size, as diffusers takes. */
  readonly tileSize: number;
}

/** A request's tiling: the pixel tile (diffusers' tile_sample_min_size), and why it tiles. */
export interface VaeTiling {
  readonly sampleTile: number;
  readonly reason: "size" | "memory";
}

// Peak float32 values a VAE decoder holds per output pixel: its last up block works at full resolution with
// 128 channels, fed by the 256-channel upsampler before it, a few tensors live at once (SD/SDXL's VAE).
const VAE_FLOATS_PER_PIXEL = 768;

/** Rough peak bytes of one full (untiled) VAE decode at width × height pixels. */
export function estimateVaeDecodeBytes(width: number, height: number): number {
  return width * height * VAE_FLOATS_PER_PIXEL * 4;
}

/**
 * Whether an image of width × height runs through `vae` in tiles: above the configured size, or when the
 * device's free memory (as the device service reports it) is less than an untiled decode needs. Only an image
 * with a side longer than one tile can tile (diffusers' own condition).
 */
export function planVaeTiling(
  width: number,
  height: number,
  vae: Pick<Vae, "sampleSize">,
  settings: VaeTilingSettings,
  freeBytes?: bigint,
): VaeTiling | undefined {
  const sampleTile = settings.tileSize || Math.max(64, Math.floor(vae.sampleSize / 32) * 32);
  if (width <= sampleTile && height <= sampleTile) return undefined;
  if (settings.tileAbovePixels > 0 && width * height > settings.tileAbovePixels)
    return { sampleTile, reason: "size" };
  if (freeBytes !== undefined && BigInt(estimateVaeDecodeBytes(width, height)) > freeBytes)
    return { sampleTile, reason: "memory" };
  return undefined;
}
