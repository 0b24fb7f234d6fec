import type { ControlUnitReport } from "./request-control-nets.js";

const RESIZE_MODE_TEXT: Record<ControlUnitReport["resizeMode"], string> = {
  "just-resize": "Just Resize",
  "crop-and-resize": "Crop and Resize",
  "resize-and-fill": "Resize and Fill",
};

/**
 * The infotext fields AUTOMATIC1111's ControlNet extension writes for its units (`Infotext.write_infotext`):
 * `ControlNet <i>` = its `serialize_unit`, `Field Name: value` pairs in the unit's field order, Python's
 * `str()` of each value, the fields it hides (a preprocessor's unused sliders, -1) left out. The model is
 * `name [hash]`, as the extension lists it. Control mode is always Balanced here (both guidance rows).
 */
export function controlNetInfotext(units: readonly ControlUnitReport[]): { key: string; value: string }[] {
  return units.map((u, i) => {
    const fields: [string, string][] = [
      ["Module", u.module],
      ["Model", `${u.model} [${u.hash}]`],
      ["Weight", pythonFloat(u.weight)],
      ["Resize Mode", RESIZE_MODE_TEXT[u.resizeMode]],
      ["Low Vram", "False"],
    ];
    if (u.processorRes !== undefined) fields.push(["Processor Res", String(u.processorRes)]);
    if (u.thresholdA !== undefined) fields.push(["Threshold A", sliderValue(u.thresholdA)]);
    if (u.thresholdB !== undefined) fields.push(["Threshold B", sliderValue(u.thresholdB)]);
    fields.push(
      ["Guidance Start", pythonFloat(u.guidanceStart)],
      ["Guidance End", pythonFloat(u.guidanceEnd)],
      ["Pixel Perfect", u.pixelPerfect ? "True" : "False"],
      ["Control Mode", "Balanced"],
    );
    return { key: `ControlNet ${i}`, value: fields.map(([k, v]) => `${k}: ${v}`).join(", ") };
  });
}

/**
 * A proto float (float32) as Python prints the float a user typed: the shortest decimal that is the same
 * float32 ("0.3", not 0.30000001192092896), with ".0" when whole.
 */
export function pythonFloat(value: number): string {
  let text = String(value);
  for (let digits = 1; digits <= 9; digits++) {
    const shorter = Number(value.toPrecision(digits));
    if (Math.fround(shorter) === Math.fround(value)) {
      text = String(shorter);
      break;
    }
  }
  return Number.isInteger(Number(text)) ? `${Number(text)}.0` : text;
}

/** A slider's value as the extension prints its defaults: whole numbers without a fraction. */
function sliderValue(value: number): string {
  return Number.isInteger(value) ? String(value) : pythonFloat(value);
}
