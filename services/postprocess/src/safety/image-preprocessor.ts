import { ModelContractError } from "@dmesh/onnx";
import { type RawImage, sharpFromRaw } from "../image/raw-image.js";
import type { ResizeKernel } from "../resize/resize-image.js";

/** Height and width. */
export interface Size {
  readonly height: number;
  readonly width: number;
}

/**
 * What a transformers image processor (ViTImageProcessor, CLIPImageProcessor, …) does to an image before
 * the model sees it, read from its `preprocessor_config.json`: convert to RGB, resize (to a fixed size, or
 * the shortest edge to a length keeping the aspect), center crop (zero-padded when the image is smaller),
 * rescale (×1/255) and normalize ((x − mean) / std per channel), channels first.
 */
export interface ImagePreprocessor {
  /** The output size when it does not depend on the image. */
  readonly size: Size | undefined;
  toPixelValues(image: RawImage): Promise<{ data: Float32Array; dims: number[] }>;
}

const FILE = "preprocessor_config.json";

/** PIL's resampling codes (transformers stores them) as the nearest sharp kernels. */
const RESAMPLE: Record<number, ResizeKernel> = {
  0: "nearest",
  1: "lanczos3",
  2: "linear",
  3: "cubic",
  4: "linear",
  5: "linear",
};

export function createImagePreprocessor(model: string, config: Record<string, unknown>): ImagePreprocessor {
  const fail = (reason: string) => new ModelContractError(model, `${FILE} ${reason}`);
  const flag = (key: string, fallback: boolean) => {
    const value = config[key] ?? fallback;
    if (typeof value !== "boolean") throw fail(`${key} must be true or false`);
    return value;
  };
  const doCenterCrop = flag("do_center_crop", false);
  const resize = flag("do_resize", true) ? resizeSpec(config.size, doCenterCrop, fail) : undefined;
  const crop = doCenterCrop ? sizeOf(config.crop_size, "crop_size", fail) : undefined;
  const resample = config.resample ?? 2;
  const kernel = typeof resample === "number" ? RESAMPLE[resample] : undefined;
  if (!kernel) throw fail(`resample must be a PIL resampling code 0-5, got ${JSON.stringify(resample)}`);
  const rescale = flag("do_rescale", true)
    ? number(config.rescale_factor ?? 1 / 255, "rescale_factor", fail)
    : 1;
  const normalize = flag("do_normalize", true);
  const mean = normalize ? triple(config.image_mean, "image_mean", fail) : [0, 0, 0];
  const std = normalize ? triple(config.image_std, "image_std", fail) : [1, 1, 1];
  if (std.some((s) => s === 0)) throw fail("image_std must not hold 0");
  const size = crop ?? (resize && "height" in resize ? resize : undefined);

  return {
    size,
    async toPixelValues(image) {
      const target = resize ? resizedSize(image, resize) : { height: image.height, width: image.width };
      const pixels = await sharpFromRaw(image)
        .removeAlpha()
        .resize(target.width, target.height, { kernel, fit: "fill" })
        .raw()
        .toBuffer();
      const out = crop ?? target;
      // transformers' center_crop: offsets floor((in − out) / 2), zeros where the crop leaves the image.
      const top = Math.floor((target.height - out.height) / 2);
      const left = Math.floor((target.width - out.width) / 2);
      const plane = out.height * out.width;
      const data = new Float32Array(3 * plane);
      for (let c = 0; c < 3; c++) {
        const m = mean[c] as number;
        const s = std[c] as number;
        for (let y = 0; y < out.height; y++) {
          const sy = y + top;
          for (let x = 0; x < out.width; x++) {
            const sx = x + left;
            const inside = sy >= 0 && sy < target.height && sx >= 0 && sx < target.width;
            const v = inside ? (pixels[(sy * target.width + sx) * 3 + c] as number) * rescale : 0;
            data[c * plane + y * out.width + x] = (v - m) / s;
          }
        }
      }
      return { data, dims: [1, 3, out.height, out.width] };
    },
  };
}

type ResizeSpec = Size | { readonly shortestEdge: number };

/**
 * `size` as transformers' get_size_dict reads it: {height, width}, {shortest_edge}, or a bare number, which
 * means a square unless the processor center-crops afterwards (CLIP's legacy configs), then a shortest edge.
 */
function resizeSpec(value: unknown, centerCrop: boolean, fail: (r: string) => Error): ResizeSpec {
  if (typeof value === "number") {
    const side = positive(value, "size", fail);
    return centerCrop ? { shortestEdge: side } : { height: side, width: side };
  }
  if (typeof value === "object" && value !== null && "shortest_edge" in value) {
    return {
      shortestEdge: positive((value as { shortest_edge: unknown }).shortest_edge, "size.shortest_edge", fail),
    };
  }
  return sizeOf(value, "size", fail);
}

function resizedSize(image: RawImage, spec: ResizeSpec): Size {
  if ("height" in spec) return spec;
  // get_resize_output_image_size: the short side becomes the edge, the long one int(edge · long / short).
  const { width, height } = image;
  const short = Math.min(width, height);
  const long = Math.trunc((spec.shortestEdge * Math.max(width, height)) / short);
  return width <= height
    ? { width: spec.shortestEdge, height: long }
    : { width: long, height: spec.shortestEdge };
}

function sizeOf(value: unknown, key: string, fail: (r: string) => Error): Size {
  if (typeof value === "number") {
    const side = positive(value, key, fail);
    return { height: side, width: side };
  }
  if (typeof value === "object" && value !== null && "height" in value && "width" in value) {
    const { height, width } = value as { height: unknown; width: unknown };
    return { height: positive(height, `${key}.height`, fail), width: positive(width, `${key}.width`, fail) };
  }
  throw fail(`${key} must be a number or {height, width}, got ${JSON.stringify(value)}`);
}

function positive(value: unknown, key: string, fail: (r: string) => Error): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 4096) {
    throw fail(`${key} must be an integer from 1 to 4096, got ${JSON.stringify(value)}`);
  }
  return value;
}

function number(value: unknown, key: string, fail: (r: string) => Error): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw fail(`${key} must be a number`);
  return value;
}

function triple(value: unknown, key: string, fail: (r: string) => Error): number[] {
  const list = typeof value === "number" ? [value, value, value] : value;
  if (
    !Array.isArray(list) ||
    list.length !== 3 ||
    !list.every((v) => typeof v === "number" && Number.isFinite(v))
  ) {
    throw fail(`${key} must be three numbers (RGB), got ${JSON.stringify(value)}`);
  }
  return list as number[];
}
