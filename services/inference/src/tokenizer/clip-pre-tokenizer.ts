import { ftfyFixText } from "./ftfy-fix-text.js";
import { htmlUnescape } from "./html-unescape.js";

/**
 * Text cleanup and word splitting as OpenAI's CLIP tokenizer (`clip/simple_tokenizer.py`), which CLIP and
 * OpenCLIP were trained with: `ftfy.fix_text`, `html.unescape` twice, strip, whitespace runs to one space,
 * lower case, then CLIP's pattern. A run of CJK letters stays one word, as training saw it (transformers'
 * CLIPTokenizer does the same when ftfy is installed; without ftfy it falls back to BERT's cleanup, which
 * splits every CJK ideograph into its own word).
 */

/** The `regex` module's `\s` (Unicode White_Space), as a character-class body. */
const WHITE_SPACE = "\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
/** Python's `str.isspace` adds U+001C-U+001F. */
const PYTHON_SPACE = `${WHITE_SPACE}\\u001c-\\u001f`;

/** What `str.strip` removes from both ends. */
const STRIPPED = new RegExp(`^[${PYTHON_SPACE}]+|[${PYTHON_SPACE}]+$`, "g");
/** The runs `whitespace_clean` collapses to one space. */
const WHITESPACE_RUN = new RegExp(`[${WHITE_SPACE}]+`, "g");
/** CLIP's pattern (case-insensitive): special tokens, English contractions, letter runs, single digits, other runs. */
const WORD = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${WHITE_SPACE}\\p{L}\\p{N}]+`,
  "giu",
);

/** `whitespace_clean(basic_clean(text)).lower()`. */
export function normalizeClipText(text: string): string {
  const cleaned = htmlUnescape(htmlUnescape(ftfyFixText(text))).replace(STRIPPED, "");
  return cleaned.replace(WHITESPACE_RUN, " ").replace(STRIPPED, "").toLowerCase();
}

/** The words that BPE sees, in order. */
export function preTokenizeClip(text: string): string[] {
  return normalizeClipText(text).match(WORD) ?? [];
}
