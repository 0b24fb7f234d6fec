import { type ControlNetUnit, ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import type { Image } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { InvalidArgumentError, quote } from "@dmesh/runtime/errors";
import { LIMITS } from "./limits.js";

/** AUTOMATIC1111 ControlNet's resize modes, by the names the control domain uses. */
export type ControlResizeModeName = "just-resize" | "crop-and-resize" | "resize-and-fill";

const RESIZE_MODES: Partial<Record<ControlResizeMode, ControlResizeModeName>> = {
  // The extension's default.
  [ControlResizeMode.UNSPECIFIED]: "crop-and-resize",
  [ControlResizeMode.JUST_RESIZE]: "just-resize",
  [ControlResizeMode.CROP_AND_RESIZE]: "crop-and-resize",
  [ControlResizeMode.RESIZE_AND_FILL]: "resize-and-fill",
};

/** A control unit's resize mode by name; undefined for a value the contract does not define. */
export function controlResizeModeName(mode: ControlResizeMode): ControlResizeModeName | undefined {
  return RESIZE_MODES[mode];
}

/** One checked ControlNet unit with its defaults applied; the preprocessor is checked where it runs. */
export interface ResolvedControlNetUnit {
  readonly model: string;
  readonly image: Image;
  readonly preprocessor: {
    readonly name: string;
    readonly resolution: number;
    readonly thresholdA: number;
    readonly thresholdB: number;
    readonly pixelPerfect: boolean;
  };
  readonly resizeMode: ControlResizeModeName;
  readonly conditioningScale: number;
  readonly guidanceStart: number;
  readonly guidanceEnd: number;
}

/**
 * Checks a request's ControlNet units: each names a model (a directory name), carries an image within the
 * input limits, a known resize mode, a scale in [0, 2] and a guidance window 0 <= start < end <= 1. Every
 * problem is INVALID_ARGUMENT naming `<prefix>[i].<field>`.
 */
export function validateControlNets(
  units: readonly ControlNetUnit[],
  prefix: string,
  checkImage: (image: Image, field: string) => void,
): ResolvedControlNetUnit[] {
  if (units.length > LIMITS.maxControlNets) {
    throw new InvalidArgumentError(prefix, `holds ${units.length} units; at most ${LIMITS.maxControlNets}`);
  }
  return units.map((unit, i) => {
    const f = (name: string) => `${prefix}[${i}].${name}`;
    const model = unit.model;
    if (model === "") throw new InvalidArgumentError(f("model"), "is required");
    if (model.length > LIMITS.maxAdapterNameChars) {
      throw new InvalidArgumentError(
        f("model"),
        `${quote(model)} is longer than ${LIMITS.maxAdapterNameChars} characters`,
      );
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    if (/[/\\\u0000-\u001f\u007f]/.test(model) || model === "." || model === "..") {
      throw new InvalidArgumentError(f("model"), `${quote(model)} is not a directory name`);
    }
    const image = unit.image;
    if (!image || image.data.length === 0) throw new InvalidArgumentError(f("image"), "is required");
    checkImage(image, f("image"));
    const resizeMode = RESIZE_MODES[unit.resizeMode];
    if (!resizeMode)
      throw new InvalidArgumentError(f("resize_mode"), `unknown resize mode ${unit.resizeMode}`);
    const conditioningScale = unit.conditioningScale ?? 1;
    within(conditioningScale, 0, 2, f("conditioning_scale"));
    const guidanceStart = unit.guidanceStart ?? 0;
    const guidanceEnd = unit.guidanceEnd ?? 1;
    within(guidanceStart, 0, 1, f("guidance_start"));
    within(guidanceEnd, 0, 1, f("guidance_end"));
    if (!(guidanceStart < guidanceEnd)) {
      throw new InvalidArgumentError(
        f("guidance_end"),
        `must be above guidance_start (${guidanceStart}), got ${guidanceEnd}`,
      );
    }
    const p = unit.preprocessor;
    return {
      model,
      image,
      preprocessor: {
        name: p?.name ?? "",
        resolution: p?.resolution ?? 0,
        thresholdA: p?.thresholdA ?? 0,
        thresholdB: p?.thresholdB ?? 0,
        pixelPerfect: p?.pixelPerfect ?? false,
      },
      resizeMode,
      conditioningScale,
      guidanceStart,
      guidanceEnd,
    };
  });
}

function within(value: number, min: number, max: number, field: string): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `must be in [${min}, ${max}], got ${value}`);
  }
}
