import type { MessageInitShape } from "@bufbuild/protobuf";
import { type ControlNetUnitSchema, ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import type { ImageSchema } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { InputError } from "../api/call-error.js";

export type ImageInit = MessageInitShape<typeof ImageSchema>;

/** An uploaded control image: what the unit sends and what the page shows of it. */
export interface ControlImage {
  readonly url: string;
  readonly label: string;
  readonly width: number;
  readonly height: number;
  readonly image: ImageInit;
}

/** One ControlNet unit as the form holds it: numbers as typed, so a bad one is reported at its own input. */
export interface ControlUnitValues {
  /** Stable across edits and removals, for keys and element ids. */
  readonly key: number;
  readonly model: string;
  readonly image: ControlImage | undefined;
  /** "none" (the image is the map) or "canny". */
  readonly preprocessor: string;
  readonly low: string;
  readonly high: string;
  readonly resolution: string;
  readonly scale: string;
  readonly start: string;
  readonly end: string;
  readonly resizeMode: ControlResizeMode;
}

export type ControlInput = Exclude<keyof ControlUnitValues, "key">;

export const PREPROCESSORS = ["none", "canny"] as const;

export const RESIZE_MODES: readonly [ControlResizeMode, string][] = [
  [ControlResizeMode.CROP_AND_RESIZE, "Crop and resize"],
  [ControlResizeMode.JUST_RESIZE, "Just resize"],
  [ControlResizeMode.RESIZE_AND_FILL, "Resize and fill"],
];

export function newControlUnit(key: number, model = ""): ControlUnitValues {
  return {
    key,
    model,
    image: undefined,
    preprocessor: "canny",
    low: "100",
    high: "200",
    resolution: "512",
    scale: "1",
    start: "0",
    end: "1",
    resizeMode: ControlResizeMode.CROP_AND_RESIZE,
  };
}

/** The request field under a unit that each input edits, as the server names fields in its errors. */
export const CONTROL_FIELDS: Record<ControlInput, string> = {
  model: "model",
  image: "image",
  preprocessor: "preprocessor.name",
  low: "preprocessor.threshold_a",
  high: "preprocessor.threshold_b",
  resolution: "preprocessor.resolution",
  scale: "conditioning_scale",
  start: "guidance_start",
  end: "guidance_end",
  resizeMode: "resize_mode",
};

export function unitField(index: number, input: ControlInput): string {
  return `spec.control_nets[${index}].${CONTROL_FIELDS[input]}`;
}

/**
 * Which unit and input an error's field is about: `spec.control_nets[i].…` (or `.i.`) from a generation,
 * or, for a preview of unit `previewOf`, PreprocessControl's own fields (`image`, `preprocessor.…`).
 */
export function controlInputFor(
  field: string | undefined,
  previewOf?: number,
): { index: number; input: ControlInput | undefined } | undefined {
  if (!field) return undefined;
  const m = /^spec\.control_nets(?:\[(\d+)\]|\.(\d+))(?:\.(.*))?$/.exec(field);
  const index = m ? Number(m[1] ?? m[2]) : previewOf;
  const rest = m ? (m[3] ?? "") : field;
  if (index === undefined) return undefined;
  const entries = Object.entries(CONTROL_FIELDS) as [ControlInput, string][];
  const input =
    entries.find(([, f]) => f === rest)?.[0] ??
    entries.find(([, f]) => rest.startsWith(`${f}.`))?.[0] ??
    (rest === "preprocessor" ? "preprocessor" : undefined);
  return { index, input };
}

function number(raw: string, field: string): number | undefined {
  if (raw.trim() === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new InputError(field, `must be a number, got "${raw.slice(0, 20)}"`);
  return n;
}

/** The preprocessor message of a unit (`index` names its fields in errors). */
export function preprocessorOf(unit: ControlUnitValues, index: number) {
  if (unit.preprocessor !== "canny") return { name: "none" };
  return {
    name: "canny",
    resolution: number(unit.resolution, unitField(index, "resolution")) ?? 0,
    thresholdA: number(unit.low, unitField(index, "low")) ?? 0,
    thresholdB: number(unit.high, unitField(index, "high")) ?? 0,
  };
}

/** GenerationSpec.control_nets from the units; a missing model or image is an error at that input. */
export function controlNetsOf(
  units: readonly ControlUnitValues[],
): MessageInitShape<typeof ControlNetUnitSchema>[] {
  return units.map((unit, i) => {
    if (!unit.model) throw new InputError(unitField(i, "model"), "choose a ControlNet model");
    if (!unit.image) throw new InputError(unitField(i, "image"), "upload a control image");
    const scale = number(unit.scale, unitField(i, "scale"));
    const start = number(unit.start, unitField(i, "start"));
    const end = number(unit.end, unitField(i, "end"));
    return {
      model: unit.model,
      image: unit.image.image,
      preprocessor: preprocessorOf(unit, i),
      resizeMode: unit.resizeMode,
      ...(scale !== undefined ? { conditioningScale: scale } : {}),
      ...(start !== undefined ? { guidanceStart: start } : {}),
      ...(end !== undefined ? { guidanceEnd: end } : {}),
    };
  });
}
