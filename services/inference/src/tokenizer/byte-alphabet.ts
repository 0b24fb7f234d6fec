/**
 * CLIP's (GPT-2's) `bytes_to_unicode`: every byte value gets a printable code point, so that BPE works on
 * strings free of whitespace and control characters. Printable Latin-1 bytes map to themselves; the other
 * 68 bytes map, in byte order, to U+0100 onwards.
 */
function buildByteToSymbol(): readonly string[] {
  const isPrintable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 0x100;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(isPrintable(b) ? b : next++));
  return table;
}

export const BYTE_TO_SYMBOL: readonly string[] = buildByteToSymbol();

export const SYMBOL_TO_BYTE: ReadonlyMap<string, number> = new Map(
  BYTE_TO_SYMBOL.map((symbol, b) => [symbol, b]),
);

const utf8 = new TextEncoder();

/** A pre-tokenized word as its UTF-8 bytes spelled in the byte alphabet. */
export function toByteSymbols(word: string): string[] {
  return Array.from(utf8.encode(word), (b) => BYTE_TO_SYMBOL[b] as string);
}
