import { InvalidArgumentError } from "@dmesh/runtime/errors";
import {
  type GenerationParameters,
  type InfotextValue,
  LEADING_FIELDS,
  SIZE_BEFORE_LABEL,
  SIZE_LABEL,
  TRAILING_FIELDS,
} from "./generation-parameters.js";
import { isInfotextKey } from "./infotext-key.js";
import { pythonStr, quoteInfotextValue } from "./infotext-value.js";

/**
 * The "parameters" text A1111's `create_infotext` writes:
 * `{prompt}\nNegative prompt: {negative}\n{Key: value, …}`, stripped, with the negative line only when
 * there is a negative prompt and values quoted by A1111's `quote`.
 */
export function formatInfotext(params: GenerationParameters): string {
  if (typeof params.prompt !== "string") throw new InvalidArgumentError("prompt", "must be a string");
  const settingsText = [...collectSettings(params)]
    .map(([key, value]) => (value === key ? key : `${key}: ${quoteInfotextValue(pythonStr(value))}`))
    .join(", ");
  const negative = params.negativePrompt ? `\nNegative prompt: ${params.negativePrompt}` : "";
  return `${params.prompt}${negative}\n${settingsText}`.trim();
}

/** The settings as A1111's ordered dict holds them: a later key replaces an earlier one in place. */
function collectSettings(params: GenerationParameters): Map<string, InfotextValue> {
  const settings = new Map<string, InfotextValue>();
  for (const field of LEADING_FIELDS) {
    if (field.label === SIZE_BEFORE_LABEL) setSize(settings, params);
    const value = params[field.key];
    if (value === undefined) continue;
    checkValue(field.key, value, field.kind);
    // A1111 leaves out Clip skip at its default of 1.
    if (field.key === "clipSkip" && (value as number) <= 1) continue;
    settings.set(field.label, value as InfotextValue);
  }
  for (const [key, value] of Object.entries(params.extra ?? {})) {
    const field = `extra.${key}`;
    if (!isInfotextKey(key)) {
      throw new InvalidArgumentError(
        field,
        "a key needs a letter, digit or _ first, then letters, digits, _, space, - or /",
      );
    }
    checkValue(field, value, "any");
    settings.set(key, value);
  }
  for (const field of TRAILING_FIELDS) {
    const value = params[field.key];
    if (value === undefined) continue;
    checkValue(field.key, value, field.kind);
    settings.set(field.label, value as InfotextValue);
  }
  return settings;
}

function setSize(settings: Map<string, InfotextValue>, params: GenerationParameters): void {
  if (params.width === undefined && params.height === undefined) return;
  if (params.width === undefined || params.height === undefined) {
    throw new InvalidArgumentError(
      params.width === undefined ? "width" : "height",
      "width and height go together",
    );
  }
  checkValue("width", params.width, "integer");
  checkValue("height", params.height, "integer");
  settings.set(SIZE_LABEL, `${params.width}x${params.height}`);
}

function checkValue(field: string, value: unknown, kind: "integer" | "number" | "string" | "any"): void {
  const finite = typeof value === "number" && Number.isFinite(value);
  const ok =
    kind === "integer"
      ? Number.isSafeInteger(value)
      : kind === "number"
        ? finite
        : kind === "string"
          ? typeof value === "string"
          : finite || typeof value === "string" || typeof value === "boolean";
  if (!ok) {
    const expected = kind === "any" ? "a string, a finite number or a boolean" : `a ${kind}`;
    throw new InvalidArgumentError(
      field,
      `must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
}
