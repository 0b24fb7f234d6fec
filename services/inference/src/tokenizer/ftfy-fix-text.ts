import { ftfyUnescapeHtml } from "./html-unescape.js";

/**
 * ftfy's `fix_text` (6.3, default configuration), which OpenAI's CLIP tokenizer runs on every prompt: per
 * line, until nothing changes, HTML entities (unless the text has a '<'), C1 controls as Windows-1252, Latin
 * ligatures, full- and halfwidth forms, curly quotes, line breaks, lone surrogates, terminal escapes and
 * invisible control characters, then NFC. Not reproduced: `fix_encoding`, ftfy's heuristic repair of
 * mojibake (UTF-8 decoded as Windows-1252 and the like), which needs its character-class badness model;
 * typed prompts do not carry mojibake.
 */
export function ftfyFixText(text: string): string {
  let decodeEntities = true;
  let out = "";
  let pos = 0;
  while (pos < text.length) {
    const lineEnd = text.indexOf("\n", pos);
    const end = lineEnd === -1 ? text.length : lineEnd + 1;
    const segment = text.slice(pos, end);
    // Once a line holds '<' (markup), ftfy stops decoding entities for the rest of the text.
    if (segment.includes("<")) decodeEntities = false;
    out += fixSegment(segment, decodeEntities);
    pos = end;
  }
  return out;
}

/** ftfy repeats its fixers until the text is stable; they converge within a few passes. */
const MAX_PASSES = 16;

function fixSegment(segment: string, decodeEntities: boolean): string {
  let text = segment;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const before = text;
    if (decodeEntities) text = ftfyUnescapeHtml(text);
    text = fixC1Controls(text);
    text = replaceChars(text, LIGATURES);
    text = replaceChars(text, widthMap());
    text = text.replace(/[\u201c-\u201f]/g, '"').replace(/[\u02bc\u2018-\u201b]/g, "'");
    text = text
      .replaceAll("\r\n", "\n")
      .replaceAll("\r", "\n")
      .replaceAll("\u2028", "\n")
      .replaceAll("\u2029", "\n")
      .replaceAll("\u0085", "\n");
    text = text.replace(/\p{Cs}/gu, "\uFFFD");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ftfy's ANSI_RE starts with ESC.
    text = text.replace(/\u001b\[((?:\d|;)*)([a-zA-Z])/g, "");
    text = text.replace(CONTROL_CHARS, "");
    text = text.normalize("NFC");
    if (text === before) break;
  }
  return text;
}

/** The Windows-1252 characters at 0x80-0x9F; its five undefined bytes stay as they are (ftfy's "sloppy" codec). */
const WINDOWS_1252_C1 =
  "\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f" +
  "\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178";

function fixC1Controls(text: string): string {
  return text.replace(/[\u0080-\u009f]/g, (c) => WINDOWS_1252_C1[c.charCodeAt(0) - 0x80] as string);
}

/**
 * ftfy's `remove_control_chars`: C0 controls but tab, newline, form feed and carriage return; DEL; the
 * deprecated Arabic format controls; the byte order mark; interlinear annotation and object replacement.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the controls ftfy removes.
const CONTROL_CHARS = /[\u0000-\u0008\u000b\u000e-\u001f\u007f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

/** ftfy's LIGATURES: Latin typographic ligatures and legacy digraphs, split into their letters. */
const LIGATURES: ReadonlyMap<string, string> = new Map([
  ["\u0132", "IJ"],
  ["\u0133", "ij"],
  ["\u0149", "\u02bcn"],
  ["\u01f1", "DZ"],
  ["\u01f2", "Dz"],
  ["\u01f3", "dz"],
  ["\u01c4", "D\u017d"],
  ["\u01c5", "D\u017e"],
  ["\u01c6", "d\u017e"],
  ["\u01c7", "LJ"],
  ["\u01c8", "Lj"],
  ["\u01c9", "lj"],
  ["\u01ca", "NJ"],
  ["\u01cb", "Nj"],
  ["\u01cc", "nj"],
  ["\ufb00", "ff"],
  ["\ufb01", "fi"],
  ["\ufb02", "fl"],
  ["\ufb03", "ffi"],
  ["\ufb04", "ffl"],
  ["\ufb05", "\u017ft"],
  ["\ufb06", "st"],
]);

let width: Map<string, string> | undefined;

/** ftfy's WIDTH_MAP: U+3000 to a space, and each U+FF01-U+FFEF form to its NFKC equivalent. */
function widthMap(): ReadonlyMap<string, string> {
  if (width) return width;
  width = new Map([["\u3000", " "]]);
  for (let code = 0xff01; code < 0xfff0; code++) {
    const char = String.fromCharCode(code);
    const alternate = char.normalize("NFKC");
    if (alternate !== char) width.set(char, alternate);
  }
  return width;
}

function replaceChars(text: string, map: ReadonlyMap<string, string>): string {
  let out = "";
  let changed = false;
  for (const char of text) {
    const replacement = map.get(char);
    if (replacement === undefined) out += char;
    else {
      out += replacement;
      changed = true;
    }
  }
  return changed ? out : text;
}
