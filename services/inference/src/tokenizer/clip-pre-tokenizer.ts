/**
 * Text cleanup and word splitting exactly as Hugging Face `CLIPTokenizer._tokenize` does when ftfy is not
 * installed (the usual diffusers setup): BERT's `BasicTokenizer(strip_accents=False, do_split_on_punc=False)`
 * then CLIP's pre-tokenization pattern. That path does no HTML unescaping ("&amp;" stays as typed).
 */

/** `_clean_text` drops NUL, U+FFFD and every category-C character except tab, newline and carriage return. */
const DROPPED = /\uFFFD|(?![\t\n\r])\p{C}/gu;
/** `_is_whitespace`: space, tab, newline, carriage return and category Zs all become one space. */
const WHITESPACE = /[\t\n\r\p{Zs}]/gu;
/** `_tokenize_chinese_chars` puts spaces around CJK ideographs, so each one is its own word. */
const CJK =
  /[\u4E00-\u9FFF\u3400-\u4DBF\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\uF900-\uFAFF\u{2F800}-\u{2FA1F}]/gu;
/** Python's `str.split()` also splits on the line and paragraph separators, which survive the cleanup. */
const SEPARATORS = /[ \u2028\u2029]+/u;
/** CLIP's pattern (case-insensitive): special tokens, English contractions, letter runs, single digits, other runs. */
const WORD = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

export function normalizeClipText(text: string): string {
  const cleaned = text.replace(DROPPED, "").replace(WHITESPACE, " ").replace(CJK, " $& ").normalize("NFC");
  return cleaned
    .split(SEPARATORS)
    .filter((word) => word.length > 0)
    .map((word) => word.toLowerCase())
    .join(" ");
}

/** The words that BPE sees, in order. */
export function preTokenizeClip(text: string): string[] {
  return normalizeClipText(text).match(WORD) ?? [];
}
