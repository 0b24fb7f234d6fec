import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { LIMITS } from "@dmesh/spec";
import { roundHalfEven } from "../schedulers/numpy-numerics.js";
import type { OpenCv } from "./opencv.js";
import { PREPROCESSOR_SCALES, type ResolvedPreprocessor, runPreprocessor } from "./preprocessors.js";
import { type ControlResizeMode, fitControlMap, pixelPerfectResolution } from "./resize-modes.js";
import type { RgbImage } from "./rgb-image.js";

/** The largest image any step may make: the pixels an input image may have (as its decoder allows). */
export const MAX_CONTROL_PIXELS = LIMITS.maxPixels * 4;

export interface ControlTarget {
  readonly width: number;
  readonly height: number;
  readonly resizeMode: ControlResizeMode;
}

/** What to make of one control image: a preprocessor at a settled resolution, and optionally a size to fit. */
export interface ControlMapPlan {
  readonly preprocessor: ResolvedPreprocessor;
  readonly target?: ControlTarget;
}

export interface ControlMap {
  readonly map: RgbImage;
  /** The resolution the preprocessor ran at (0 for one that takes none). */
  readonly resolution: number;
}

/**
 * Settles the preprocessor's resolution for an image of this size (pixel perfect's estimate needs the
 * target) and checks that no step would make an image past MAX_CONTROL_PIXELS: a long thin image scaled by
 * its short side, or cropped to cover a target of another shape, can grow without bound.
 */
export function planControlMap(
  image: { readonly width: number; readonly height: number },
  preprocessor: ResolvedPreprocessor,
  target: ControlTarget | undefined,
  fields: { readonly image: string; readonly preprocessor: string },
): ControlMapPlan {
  let p = preprocessor;
  if (p.pixelPerfect) {
    if (!target) {
      throw new InvalidArgumentError(
        `${fields.preprocessor}.pixel_perfect`,
        "needs a target width and height",
      );
    }
    p = {
      ...p,
      resolution: Math.max(1, pixelPerfectResolution(image, target.width, target.height, target.resizeMode)),
    };
  }
  let map = image;
  if (PREPROCESSOR_SCALES[p.name]) {
    const k = p.resolution / Math.min(image.width, image.height);
    map = { width: roundHalfEven(image.width * k), height: roundHalfEven(image.height * k) };
    checkPixels(map, `${fields.preprocessor}.resolution`, `scales the ${image.width}x${image.height} image`);
  }
  if (target && target.resizeMode !== "just-resize") {
    const kh = target.height / map.height;
    const kw = target.width / map.width;
    const k = target.resizeMode === "resize-and-fill" ? Math.min(kh, kw) : Math.max(kh, kw);
    checkPixels(
      { width: roundHalfEven(map.width * k), height: roundHalfEven(map.height * k) },
      fields.image,
      `(its map ${map.width}x${map.height}) fitted to ${target.width}x${target.height} is scaled`,
    );
  }
  return target ? { preprocessor: p, target } : { preprocessor: p };
}

function checkPixels(size: { width: number; height: number }, field: string, what: string): void {
  if (size.width < 1 || size.height < 1 || size.width * size.height > MAX_CONTROL_PIXELS) {
    throw new InvalidArgumentError(
      field,
      `${what} to ${size.width}x${size.height}, outside 1..${MAX_CONTROL_PIXELS} pixels`,
    );
  }
}

/** The control map the ControlNet extension makes: the preprocessor, then `detectmap_proc`'s fit to the target. */
export function makeControlMap(cv: OpenCv, image: RgbImage, plan: ControlMapPlan): ControlMap {
  let map = runPreprocessor(cv, image, plan.preprocessor);
  if (plan.target) {
    const { width, height, resizeMode } = plan.target;
    map = fitControlMap(cv, map, width, height, resizeMode);
  }
  return { map, resolution: plan.preprocessor.resolution };
}
