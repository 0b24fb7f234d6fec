import { PromptSyntaxError } from "./tokenizer-errors.js";

/** A run of prompt text and its attention multiplier; `["BREAK", -1]` marks a forced chunk break. */
export type WeightedText = [text: string, weight: number];

export const BREAK_MARKER_WEIGHT = -1;

/** AUTOMATIC1111's `re_attention`: escapes, brackets, `:weight)`, plain runs, and a lone ':'. */
const ATTENTION_TOKEN = /\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:([+-]?[.\d]+)\)|\)|\]|[^\\()[\]:]+|:/gu;
/** `\s*\bBREAK\b\s*`, with Python's Unicode word boundary spelled as look-arounds. */
const BREAK = /\s*(?<![\p{L}\p{N}_])BREAK(?![\p{L}\p{N}_])\s*/u;
/** The strings Python's `float()` accepts among those `[+-]?[.\d]+` can match. */
const PY_FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)$/;

const ROUND_MULTIPLIER = 1.1;
const SQUARE_MULTIPLIER = 1 / 1.1;

/**
 * `parse_prompt_attention` from A1111's modules/prompt_parser.py, operation for operation, so weights
 * are bit-identical: `(x)` x1.1, `[x]` /1.1, `(x:w)` xw, `\(` `\)` `\[` `\]` `\\` literals, unbalanced
 * brackets closed at the end, BREAK split out, then runs of equal weight merged. A BREAK inside
 * brackets gets its weight multiplied and so stops being a break, as in A1111. `field` names the
 * request field in errors.
 */
export function parsePromptAttention(text: string, field = "prompt"): WeightedText[] {
  const res: WeightedText[] = [];
  const roundBrackets: number[] = [];
  const squareBrackets: number[] = [];
  const multiplyRange = (start: number, multiplier: number) => {
    for (let p = start; p < res.length; p++) (res[p] as WeightedText)[1] *= multiplier;
  };

  for (const match of text.matchAll(ATTENTION_TOKEN)) {
    const token = match[0];
    const weight = match[1];
    if (token.startsWith("\\")) {
      res.push([token.slice(1), 1.0]);
    } else if (token === "(") {
      roundBrackets.push(res.length);
    } else if (token === "[") {
      squareBrackets.push(res.length);
    } else if (weight !== undefined && roundBrackets.length > 0) {
      // A1111 calls float() here, which raises on strings like "1.2.3": refuse them the same way.
      if (!PY_FLOAT.test(weight)) throw new PromptSyntaxError(field, `invalid attention weight "${weight}"`);
      multiplyRange(roundBrackets.pop() as number, Number(weight));
    } else if (token === ")" && roundBrackets.length > 0) {
      multiplyRange(roundBrackets.pop() as number, ROUND_MULTIPLIER);
    } else if (token === "]" && squareBrackets.length > 0) {
      multiplyRange(squareBrackets.pop() as number, SQUARE_MULTIPLIER);
    } else {
      token.split(BREAK).forEach((part, i) => {
        if (i > 0) res.push(["BREAK", BREAK_MARKER_WEIGHT]);
        res.push([part, 1.0]);
      });
    }
  }
  for (const start of roundBrackets) multiplyRange(start, ROUND_MULTIPLIER);
  for (const start of squareBrackets) multiplyRange(start, SQUARE_MULTIPLIER);

  if (res.length === 0) res.push(["", 1.0]);
  for (let i = 0; i + 1 < res.length; ) {
    const current = res[i] as WeightedText;
    const next = res[i + 1] as WeightedText;
    if (current[1] === next[1]) {
      current[0] += next[0];
      res.splice(i + 1, 1);
    } else {
      i += 1;
    }
  }
  return res;
}

export const isBreakMarker = ([text, weight]: WeightedText): boolean =>
  text === "BREAK" && weight === BREAK_MARKER_WEIGHT;
