import { readFileSync } from "node:fs";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type ControlNetUnitSchema, ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { encodingOf } from "./image-file.js";

/** `dmesh generate`'s ControlNet flags. */
export const CONTROL_FLAGS = {
  control: { type: "string", multiple: true },
  "control-preprocess": { type: "string", multiple: true },
  "control-thresholds": { type: "string" },
  "control-resize": { type: "string" },
} as const;

export const CONTROL_FLAG_HELP = `--control NAME:IMAGE[:SCALE[:START:END]] (repeatable) steers the image with ControlNet NAME
  (<MODELS_DIR>/controlnet/NAME) and the control image IMAGE, at SCALE (0..2, default 1) over the fraction
  START..END of the steps (default 0..1); --control-preprocess canny|none turns IMAGE into the map first
  (once for every unit, or once per --control in order; default none: IMAGE is the map);
  --control-thresholds LOW:HIGH for canny (default 100:200); --control-resize just|crop|fill (default crop)`;

type UnitInit = MessageInitShape<typeof ControlNetUnitSchema>;

const RESIZE: Record<string, ControlResizeMode> = {
  just: ControlResizeMode.JUST_RESIZE,
  crop: ControlResizeMode.CROP_AND_RESIZE,
  fill: ControlResizeMode.RESIZE_AND_FILL,
};

const isNumber = (s: string) => s.trim() !== "" && Number.isFinite(Number(s));

/**
 * The ControlNet units the flags ask for, each image read from its file. A path may hold colons: the numbers
 * at the end are SCALE (one) or SCALE:START:END (three), the rest after NAME is the path.
 */
export function controlNetsFromFlags(
  flags: {
    control?: readonly string[];
    "control-preprocess"?: readonly string[];
    "control-thresholds"?: string;
    "control-resize"?: string;
  },
  readImage: (file: string) => Uint8Array = readFileSync,
): UnitInit[] {
  const controls = flags.control ?? [];
  const preprocess = flags["control-preprocess"] ?? [];
  if (preprocess.length > 1 && preprocess.length !== controls.length) {
    throw new Error(
      `--control-preprocess: give one for every unit or one per --control (${controls.length}), got ${preprocess.length}`,
    );
  }
  if (
    controls.length === 0 &&
    (preprocess.length > 0 || flags["control-thresholds"] || flags["control-resize"])
  )
    throw new Error("--control-preprocess, --control-thresholds and --control-resize need a --control");
  let thresholds: { thresholdA: number; thresholdB: number } | undefined;
  if (flags["control-thresholds"] !== undefined) {
    const [low = "", high = "", ...more] = flags["control-thresholds"].split(":");
    if (!isNumber(low) || !isNumber(high) || more.length > 0)
      throw new Error(
        `--control-thresholds must be LOW:HIGH, got "${flags["control-thresholds"].slice(0, 40)}"`,
      );
    thresholds = { thresholdA: Number(low), thresholdB: Number(high) };
  }
  const resizeName = flags["control-resize"];
  const resizeMode = resizeName === undefined ? undefined : RESIZE[resizeName];
  if (resizeName !== undefined && resizeMode === undefined)
    throw new Error(`--control-resize must be just, crop or fill, got "${resizeName.slice(0, 20)}"`);
  return controls.map((text, i) => {
    const [model = "", ...rest] = text.split(":");
    let numbers = 0;
    while (numbers < rest.length - 1 && numbers < 3 && isNumber(rest[rest.length - 1 - numbers] as string))
      numbers++;
    if (numbers === 2) numbers = 1;
    const values = rest.slice(rest.length - numbers).map(Number);
    const image = rest.slice(0, rest.length - numbers).join(":");
    if (!model || !image)
      throw new Error(`--control must be NAME:IMAGE[:SCALE[:START:END]], got "${text.slice(0, 80)}"`);
    const [scale, start, end] = values;
    const name = preprocess[preprocess.length === 1 ? 0 : i] ?? "none";
    return {
      model,
      image: { encoding: encodingOf(image), data: readImage(image) },
      preprocessor: { name, ...(name === "canny" && thresholds ? thresholds : {}) },
      ...(resizeMode !== undefined ? { resizeMode } : {}),
      ...(scale !== undefined ? { conditioningScale: scale } : {}),
      ...(start !== undefined ? { guidanceStart: start, guidanceEnd: end } : {}),
    };
  });
}
