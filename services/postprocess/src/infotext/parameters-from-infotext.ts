import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { splitA1111Sampler } from "@dmesh/spec";
import {
  type GenerationParameters,
  LEADING_FIELDS,
  SIZE_LABEL,
  TRAILING_FIELDS,
} from "./generation-parameters.js";
import type { ParsedInfotext } from "./parse-infotext.js";

/**
 * Typed parameters from a parsed infotext: known keys become typed fields (numbers parsed, `Size`
 * into width and height); every other key lands in `extra` as text.
 */
export function parametersFromInfotext(parsed: ParsedInfotext): GenerationParameters {
  const rest = joinSplitSizes(parsed.fields);
  const typed: Record<string, string | number> = {};
  for (const field of [...LEADING_FIELDS, ...TRAILING_FIELDS]) {
    const text = rest.get(field.label);
    if (text === undefined) continue;
    rest.delete(field.label);
    typed[field.key] = field.kind === "string" ? text : parseNumber(field.label, text, field.kind);
  }
  if (typeof typed.sampler === "string" && typed.scheduleType === undefined) {
    // Infotexts from before A1111 had "Schedule type" fold it into the sampler: "DPM++ 2M Karras".
    const split = splitA1111Sampler(typed.sampler);
    typed.sampler = split.sampler;
    if (split.scheduleType !== "") typed.scheduleType = split.scheduleType;
  }
  const size = rest.get(SIZE_LABEL);
  rest.delete(SIZE_LABEL);
  if (size !== undefined) {
    const [width = "", height = ""] = size.split("x");
    typed.width = parseNumber(SIZE_LABEL, width, "integer");
    typed.height = parseNumber(SIZE_LABEL, height, "integer");
  }
  return {
    prompt: parsed.prompt,
    ...(parsed.negativePrompt === "" ? {} : { negativePrompt: parsed.negativePrompt }),
    ...typed,
    ...(rest.size === 0 ? {} : { extra: Object.fromEntries(rest) }),
  };
}

/** Undoes A1111's split of `Key: WxH` into `Key-1` and `Key-2`. */
function joinSplitSizes(fields: Readonly<Record<string, string>>): Map<string, string> {
  const joined = new Map<string, string>();
  for (const [key, value] of Object.entries(fields)) {
    const base = key.slice(0, -2);
    const isSplit = (suffix: string) => key.endsWith(suffix) && !(base in fields);
    if (isSplit("-1") && `${base}-2` in fields) joined.set(base, `${value}x${fields[`${base}-2`]}`);
    else if (!(isSplit("-2") && `${base}-1` in fields)) joined.set(key, value);
  }
  return joined;
}

function parseNumber(label: string, text: string, kind: "integer" | "number"): number {
  const value = text.trim() === "" ? Number.NaN : Number(text);
  if (kind === "integer" ? !Number.isSafeInteger(value) : !Number.isFinite(value)) {
    const expected = kind === "integer" ? "an integer" : "a number";
    throw new InvalidArgumentError(`infotext.${label}`, `expected ${expected}, got ${JSON.stringify(text)}`);
  }
  return value;
}
