/** AUTOMATIC1111 ControlNet's resize modes, by the names its infotext writes (older releases' names too). */
export type ControlNetResizeMode = "just-resize" | "crop-and-resize" | "resize-and-fill";

const RESIZE_MODES: Readonly<Record<string, ControlNetResizeMode>> = {
  "Just Resize": "just-resize",
  "Crop and Resize": "crop-and-resize",
  "Resize and Fill": "resize-and-fill",
  "Scale to Fit (Inner Fit)": "crop-and-resize",
  "Envelope (Outer Fit)": "resize-and-fill",
};

/** One `ControlNet <i>` unit of an infotext, typed; what the text leaves out stays undefined. */
export interface InfotextControlNetUnit {
  readonly index: number;
  readonly module: string;
  /** The model's name, without the ` [hash]` the extension appends. */
  readonly model: string;
  readonly modelHash: string | undefined;
  readonly weight: number | undefined;
  readonly resizeMode: ControlNetResizeMode | undefined;
  readonly processorRes: number | undefined;
  readonly thresholdA: number | undefined;
  readonly thresholdB: number | undefined;
  readonly guidanceStart: number | undefined;
  readonly guidanceEnd: number | undefined;
  readonly pixelPerfect: boolean | undefined;
  readonly controlMode: string | undefined;
}

const UNIT_KEY = /^ControlNet (\d+)$/;

/**
 * The ControlNet units among an infotext's fields, in unit order, read as the extension's `parse_unit` reads
 * them: `Field Name: value` items split at commas. A unit that does not read so (the extension's legacy
 * format, which it no longer reads either) is left out.
 */
export function controlNetUnitsFromInfotext(
  fields: Readonly<Record<string, string | number | boolean>>,
): InfotextControlNetUnit[] {
  const units: InfotextControlNetUnit[] = [];
  for (const [key, value] of Object.entries(fields)) {
    const match = UNIT_KEY.exec(key);
    if (!match || typeof value !== "string") continue;
    const unit = parseUnit(Number(match[1]), value);
    if (unit) units.push(unit);
  }
  return units.sort((a, b) => a.index - b.index);
}

function parseUnit(index: number, text: string): InfotextControlNetUnit | undefined {
  const items = new Map<string, string>();
  for (const item of text.split(",")) {
    const parts = item.trim().split(": ");
    if (parts.length !== 2) return undefined;
    items.set(parts[0] as string, parts[1] as string);
  }
  const module = items.get("Module");
  const modelText = items.get("Model");
  if (module === undefined || modelText === undefined) return undefined;
  const hashed = /^(.*) \[([0-9a-fA-F]+)\]$/.exec(modelText);
  const number = (name: string) => {
    const v = items.get(name);
    const n = v === undefined ? Number.NaN : Number(v);
    return Number.isFinite(n) ? n : undefined;
  };
  const flag = (name: string) => {
    const v = items.get(name);
    return v === "True" ? true : v === "False" ? false : undefined;
  };
  return {
    index,
    module,
    model: hashed ? (hashed[1] as string) : modelText,
    modelHash: hashed?.[2],
    weight: number("Weight"),
    resizeMode: RESIZE_MODES[items.get("Resize Mode") ?? ""],
    processorRes: number("Processor Res"),
    thresholdA: number("Threshold A"),
    thresholdB: number("Threshold B"),
    guidanceStart: number("Guidance Start"),
    guidanceEnd: number("Guidance End"),
    pixelPerfect: flag("Pixel Perfect"),
    controlMode: items.get("Control Mode"),
  };
}
