/** Merge ranks keyed by `${left} ${right}` (symbols never contain a space); lower rank merges first. */
export type MergeRanks = ReadonlyMap<string, number>;

export const END_OF_WORD = "</w>";

/**
 * CLIP's `bpe`: the word's last symbol carries `</w>`, then the lowest-ranked adjacent pair is merged
 * (every non-overlapping occurrence, left to right) until no adjacent pair has a rank.
 */
export function bytePairMerge(symbols: readonly string[], ranks: MergeRanks): string[] {
  const last = symbols.length - 1;
  if (last < 0) return [];
  let word = symbols.map((s, i) => (i === last ? s + END_OF_WORD : s));
  while (word.length > 1) {
    let best: [string, string] | undefined;
    let bestRank = Number.POSITIVE_INFINITY;
    for (let i = 0; i < word.length - 1; i++) {
      const rank = ranks.get(`${word[i]} ${word[i + 1]}`);
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        best = [word[i] as string, word[i + 1] as string];
      }
    }
    if (!best) break;
    const [first, second] = best;
    const merged: string[] = [];
    for (let i = 0; i < word.length; ) {
      if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
        merged.push(first + second);
        i += 2;
      } else {
        merged.push(word[i] as string);
        i += 1;
      }
    }
    word = merged;
  }
  return word;
}
