import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { cannyMap } from "./canny.js";
import type { OpenCv } from "./opencv.js";
import type { RgbImage } from "./rgb-image.js";

/** A preprocessor as a request names it; zeros mean the preprocessor's defaults. */
export interface PreprocessorRequest {
  readonly name: string;
  readonly resolution: number;
  readonly thresholdA: number;
  readonly thresholdB: number;
  readonly pixelPerfect: boolean;
}

/** A checked preprocessor with its defaults applied. */
export interface ResolvedPreprocessor {
  readonly name: PreprocessorName;
  /** The short side it works at; replaced by pixel perfect's estimate when `pixelPerfect`. */
  readonly resolution: number;
  readonly thresholdA: number;
  readonly thresholdB: number;
  readonly pixelPerfect: boolean;
}

interface Slider {
  readonly label: string;
  readonly min: number;
  readonly max: number;
  readonly default: number;
}

interface Preprocessor {
  /** Whether it scales the image to a resolution first (the extension's `resize_image_with_pad`). */
  readonly usesResolution: boolean;
  readonly thresholdA?: Slider;
  readonly thresholdB?: Slider;
  run(cv: OpenCv, image: RgbImage, p: ResolvedPreprocessor): RgbImage;
}

/** The extension's resolution slider, shared by every preprocessor that scales its input. */
const RESOLUTION: Slider = { label: "resolution", min: 64, max: 2048, default: 512 };

/** The ControlNet extension's preprocessors ("modules") we run, by name, with its sliders' bounds and defaults. */
const PREPROCESSORS = {
  none: { usesResolution: false, run: (_cv, image) => image },
  canny: {
    usesResolution: true,
    thresholdA: { label: "low threshold", min: 1, max: 255, default: 100 },
    thresholdB: { label: "high threshold", min: 1, max: 255, default: 200 },
    // The extension passes int(slider) to cv2.Canny; OpenCV swaps the two when low > high.
    run: (cv, image, p) =>
      cannyMap(cv, image, p.resolution, Math.trunc(p.thresholdA), Math.trunc(p.thresholdB)),
  },
} satisfies Record<string, Preprocessor>;

export type PreprocessorName = keyof typeof PREPROCESSORS;

/** Whether each preprocessor first scales its input to its resolution (so the map's size follows it). */
export const PREPROCESSOR_SCALES = Object.fromEntries(
  Object.entries(PREPROCESSORS).map(([name, p]) => [name, p.usesResolution]),
) as Record<PreprocessorName, boolean>;

export const PREPROCESSOR_NAMES = Object.keys(PREPROCESSORS) as PreprocessorName[];

function isPreprocessorName(name: string): name is PreprocessorName {
  return Object.hasOwn(PREPROCESSORS, name);
}

/**
 * Checks a requested preprocessor and applies its defaults. Every problem is an INVALID_ARGUMENT naming the
 * field under `prefix`. Unlike the extension, which quietly falls back to a default, an out-of-range value
 * is refused.
 */
export function resolvePreprocessor(req: PreprocessorRequest, prefix: string): ResolvedPreprocessor {
  const name = req.name === "" ? "none" : req.name;
  if (!isPreprocessorName(name)) {
    throw new InvalidArgumentError(
      `${prefix}.name`,
      `unknown preprocessor "${name.slice(0, 40)}"; known: ${PREPROCESSOR_NAMES.join(", ")}`,
    );
  }
  const p: Preprocessor = PREPROCESSORS[name];
  const slider = (value: number, s: Slider | undefined, field: string): number => {
    if (!s) return 0;
    if (value === 0) return s.default;
    if (!Number.isFinite(value) || value < s.min || value > s.max) {
      throw new InvalidArgumentError(
        `${prefix}.${field}`,
        `${s.label} must be in [${s.min}, ${s.max}], got ${value}`,
      );
    }
    return value;
  };
  return {
    name,
    resolution: p.usesResolution ? Math.trunc(slider(req.resolution, RESOLUTION, "resolution")) : 0,
    thresholdA: slider(req.thresholdA, p.thresholdA, "threshold_a"),
    thresholdB: slider(req.thresholdB, p.thresholdB, "threshold_b"),
    pixelPerfect: p.usesResolution && req.pixelPerfect,
  };
}

/** Runs a resolved preprocessor on an RGB image; its output is an RGB control map. */
export function runPreprocessor(cv: OpenCv, image: RgbImage, p: ResolvedPreprocessor): RgbImage {
  return PREPROCESSORS[p.name].run(cv, image, p);
}
