import type { InfotextValue } from "./generation-parameters.js";

/** Python's `str()` of the value: the text A1111's f-string puts after `Key: `. */
export function pythonStr(value: InfotextValue): string {
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "string") return value;
  return pythonNumber(value);
}

/**
 * A JS number as Python prints it. Integral numbers print as Python ints ("7"); pass a string such as
 * "7.0" to reproduce a Python float with no fraction. Fractions use Python's repr rules, which switch
 * to exponent notation below 1e-4 and from 1e16 ("1e-05" where JS writes "0.00001").
 */
export function pythonNumber(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return String(value);
  const [mantissa = "", exponentText = "0"] = value.toExponential().split("e");
  const exponent = Number(exponentText);
  if (exponent >= -4 && exponent < 16) return String(value);
  const digits = String(Math.abs(exponent)).padStart(2, "0");
  return `${mantissa}e${exponent < 0 ? "-" : "+"}${digits}`;
}

/** A1111's `quote`: JSON-encode (non-ASCII kept) values that hold a comma, a colon or a newline. */
export function quoteInfotextValue(text: string): string {
  if (!text.includes(",") && !text.includes("\n") && !text.includes(":")) return text;
  // JSON.stringify escapes exactly what Python's json.dumps(ensure_ascii=False) escapes.
  return JSON.stringify(text);
}

/** A1111's `unquote`: decode a JSON string literal, or give the text back unchanged. */
export function unquoteInfotextValue(text: string): string {
  if (text.length === 0 || !text.startsWith('"') || !text.endsWith('"')) return text;
  try {
    const decoded: unknown = JSON.parse(text);
    return typeof decoded === "string" ? decoded : text;
  } catch {
    return text;
  }
}
