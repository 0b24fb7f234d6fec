/**
 * Every bound a generation request must respect, in one place: they keep one request from exhausting a
 * process's memory or time, and the README's limits table is this object.
 */
export const LIMITS = {
  /** Width and height in pixels: a multiple of 8 (the VAE's downscale) within [min, max]. */
  minSide: 64,
  maxSide: 4096,
  sideMultiple: 8,
  /** Largest width x height of one image. */
  maxPixels: 2048 * 2048,
  minSteps: 1,
  maxSteps: 500,
  maxImagesPerRequest: 16,
  maxPromptChars: 8000,
  maxGuidanceScale: 50,
  maxClipSkip: 10,
  maxPreviewInterval: 500,
  /** Largest encoded input image (init image or mask) in bytes. */
  maxInputImageBytes: 32 * 1024 * 1024,
  /** Ids a caller sends: session, batch, artifact, workflow and request ids, page tokens. */
  maxIdChars: 128,
  /** Names: models, a workflow's image inputs, batch axis fields (adapters: maxAdapterNameChars). */
  maxNameChars: 256,
  /** LoRAs one request may name (prompt tags and the adapter list together). */
  maxAdapters: 16,
  /** Longest LoRA or embedding name (a file stem). */
  maxAdapterNameChars: 128,
  /** Largest LoRA weight magnitude; negative weights are allowed. */
  maxAdapterWeight: 10,
  /** ControlNet units one request may use (each runs beside the UNet at every step it acts on). */
  maxControlNets: 4,
} as const;

export const DEFAULTS = {
  guidanceScale: 7,
  strength: 0.8,
  steps: 20,
  count: 1,
  aestheticScore: 6,
  negativeAestheticScore: 2.5,
  /** With a refiner and no `denoising_end`: the base runs the first 80% (diffusers' documented split). */
  denoisingEnd: 0.8,
} as const;
