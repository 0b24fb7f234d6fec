import { ModelCache, modelDirectoryIn } from "@dmesh/onnx";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import sharp from "sharp";
import { type RawImage, sharpFromRaw, toRawImage } from "../image/raw-image.js";
import { resizeImage } from "../resize/resize-image.js";
import { loadUpscaleModel, type UpscaleModel } from "./upscale-model.js";
import { upscaleTiled } from "./upscale-tiled.js";

export interface ModelUpscalerOptions {
  /** onnxruntime threads; 0 or none: one per core. */
  readonly intraOpThreads?: number;
  /** Where the models run: their own worker threads (the default), or the event loop. */
  readonly thread?: "worker" | "main";
  /** Each subdirectory is a model a request may name. */
  readonly modelsDir: string;
  /** Models kept loaded. */
  readonly cacheSize: number;
  readonly tileSize: number;
  readonly tileOverlap: number;
}

export interface ModelUpscaleRequest {
  readonly model: string;
  /** Output size over input size; 0 = the model's own scale. */
  readonly factor: number;
  readonly maxOutputPixels: number;
  readonly signal?: AbortSignal;
}

/** Request field the model name came from, named in errors. */
const MODEL_FIELD = "upscale.model";
/** A ×2 model reaches ×4 in two passes; more passes only magnify the model's artefacts. */
const MAX_PASSES = 2;

/**
 * Super-resolution with ONNX models from a directory, loaded on first use and kept in a bounded cache.
 * The model runs as many passes as the factor needs (a ×2 model twice for ×4) and the result is resized
 * with lanczos3 to the exact factor when the model overshoots (a ×4 model asked for ×2), as A1111 does.
 * Alpha is not the model's business: it is resized with lanczos3 and put back.
 */
export class ModelUpscaler {
  private readonly cache: ModelCache<UpscaleModel>;

  constructor(private readonly options: ModelUpscalerOptions) {
    this.cache = new ModelCache({
      capacity: options.cacheSize,
      load: async (name) =>
        loadUpscaleModel(await modelDirectoryIn(options.modelsDir, name, MODEL_FIELD), name, options),
      release: (model) => model.release(),
    });
  }

  /**
   * Side of the largest image an upscale by `factor` makes over the input's (a ×4 model asked for ×2
   * makes ×4 first), loading the model if need be: so a caller can size the work before decoding.
   */
  peakScale(model: string, factor: number): Promise<number> {
    return this.cache.use(model, async (m) =>
      Math.max(m.scale ** passCount(m.scale, factor || m.scale), factor),
    );
  }

  /** Names of the models loaded now, least recently used first. */
  loaded(): string[] {
    return this.cache.keys();
  }

  upscale(image: RawImage, request: ModelUpscaleRequest): Promise<RawImage> {
    return this.cache.use(request.model, async (model) => {
      const factor = request.factor || model.scale;
      const width = image.width * factor;
      const height = image.height * factor;
      checkOutputPixels(width, height, request.maxOutputPixels, "upscale.factor");
      let rgb = image;
      for (let pass = passCount(model.scale, factor); pass > 0; pass--) {
        // A pass that would overshoot the limit is refused up front, not discovered after the work.
        checkOutputPixels(
          rgb.width * model.scale,
          rgb.height * model.scale,
          request.maxOutputPixels,
          MODEL_FIELD,
        );
        rgb = await upscaleTiled(model, rgb, {
          tileSize: this.options.tileSize,
          overlap: this.options.tileOverlap,
          ...(request.signal ? { signal: request.signal } : {}),
        });
      }
      request.signal?.throwIfAborted();
      if (rgb.width !== width || rgb.height !== height) {
        rgb = await resizeImage(rgb, { width, height, maxOutputPixels: request.maxOutputPixels });
      }
      return image.channels === 4 ? withAlphaOf(rgb, image) : rgb;
    });
  }

  close(): Promise<void> {
    return this.cache.clear();
  }
}

/** Model passes for `factor`: until the factor is reached, at most MAX_PASSES; one for a ×1 model. */
function passCount(scale: number, factor: number): number {
  let passes = 1;
  for (let side = scale; side < factor && scale > 1 && passes < MAX_PASSES; side *= scale) passes++;
  return passes;
}

function checkOutputPixels(width: number, height: number, max: number, field: string): void {
  if (width * height > max) {
    throw new InvalidArgumentError(
      field,
      `gives ${width}x${height} (${width * height} pixels); the limit is ${max}`,
    );
  }
}

/** `rgb` (3 channels, from the model) with `source`'s alpha resized to it. */
async function withAlphaOf(rgb: RawImage, source: RawImage): Promise<RawImage> {
  const alpha = await sharpFromRaw(source)
    .extractChannel(3)
    .resize(rgb.width, rgb.height, { kernel: "lanczos3", fit: "fill" })
    .raw()
    .toBuffer();
  return toRawImage(
    sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } }).joinChannel(alpha, {
      raw: { width: rgb.width, height: rgb.height, channels: 1 },
    }),
  );
}
