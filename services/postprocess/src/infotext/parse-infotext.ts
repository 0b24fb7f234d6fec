import { INFOTEXT_KEY_SOURCE } from "./infotext-key.js";
import { unquoteInfotextValue } from "./infotext-value.js";

/** What A1111's `parse_generation_parameters` reads from an infotext, before it fills UI defaults. */
export interface ParsedInfotext {
  readonly prompt: string;
  readonly negativePrompt: string;
  /**
   * `Key: value` pairs of the settings line, unquoted. As in A1111, a `WxH` value is split into
   * `Key-1` and `Key-2` (`Size-1: "1024"`, `Size-2: "768"`).
   */
  readonly fields: Readonly<Record<string, string>>;
}

// A1111's re_param; `[^\n]` stands for Python's `.`, which (unlike JavaScript's) matches `\r`.
const PARAM = new RegExp(
  String.raw`\s*(${INFOTEXT_KEY_SOURCE}):\s*("(?:\\[^\n]|[^\\"])+"|[^,]*)(?:,|$)`,
  "gu",
);
const IMAGE_SIZE = /^(\p{Nd}+)x(\p{Nd}+)$/u;
const NEGATIVE_PREFIX = "Negative prompt:";

/**
 * Parses an infotext the way A1111 does: the last line holds the settings when at least three
 * `Key: value` pairs match there; lines before the `Negative prompt:` line are the prompt, lines from
 * it on the negative prompt. A1111's UI extras (style extraction, hypernet prompt suffix, defaults for
 * absent keys) depend on its settings and are left to the caller.
 */
export function parseInfotext(text: string): ParsedInfotext {
  const lines = text.trim().split("\n");
  let settingsLine = lines.pop() ?? "";
  if ([...settingsLine.matchAll(PARAM)].length < 3) {
    lines.push(settingsLine);
    settingsLine = "";
  }

  let prompt = "";
  let negativePrompt = "";
  let inNegative = false;
  for (const rawLine of lines) {
    let line = rawLine.trim();
    if (line.startsWith(NEGATIVE_PREFIX)) {
      inNegative = true;
      line = line.slice(NEGATIVE_PREFIX.length).trim();
    }
    // A1111 joins with "\n" only once the text is non-empty, so leading blank lines vanish.
    if (inNegative) negativePrompt += (negativePrompt === "" ? "" : "\n") + line;
    else prompt += (prompt === "" ? "" : "\n") + line;
  }

  const fields: Record<string, string> = {};
  for (const [, key = "", rawValue = ""] of settingsLine.matchAll(PARAM)) {
    // A1111 indexes v[0] and skips the pair on the IndexError an empty value raises.
    if (rawValue === "") continue;
    const value =
      rawValue.startsWith('"') && rawValue.endsWith('"') ? unquoteInfotextValue(rawValue) : rawValue;
    const size = IMAGE_SIZE.exec(value);
    if (size) {
      fields[`${key}-1`] = size[1] ?? "";
      fields[`${key}-2`] = size[2] ?? "";
    } else {
      fields[key] = value;
    }
  }
  return { prompt, negativePrompt, fields };
}
