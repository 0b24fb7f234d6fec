// Where a prompt names a textual-inversion embedding, as A1111 finds it (modules/textual_inversion,
// EmbeddingDatabase.find_embedding_at_position): each embedding's file stem is tokenized like prompt text
// (no BOS/EOS), and wherever a prompt's tokens continue with that exact token sequence, those tokens
// become the embedding's vectors; of several candidates at one position the longest sequence wins.
// Working on tokens rather than text gives A1111's results: matches are case-insensitive (CLIP lowercases),
// hold inside weighting syntax ("(name:1.2)" is tokenized per weighted run), and need no word boundary
// rules of their own. The tokenizer integration calls `at` while it deals tokens into 75-token chunks and,
// like A1111, starts a new chunk when an embedding's vectors would not fit the current one.

export interface NamedTokens<T> {
  /** The embedding's token ids, as the first tokenizer encodes its name without BOS/EOS. */
  readonly ids: readonly number[];
  readonly value: T;
}

export interface EmbeddingMatch<T> {
  readonly value: T;
  /** Prompt tokens the name takes (its vectors may be more or fewer). */
  readonly length: number;
}

export interface EmbeddingMatcher<T> {
  /** The embedding whose name's tokens start at `tokens[offset]`, longest first; undefined for none. */
  at(tokens: ArrayLike<number>, offset: number): EmbeddingMatch<T> | undefined;
}

export function createEmbeddingMatcher<T>(entries: Iterable<NamedTokens<T>>): EmbeddingMatcher<T> {
  const byFirst = new Map<number, NamedTokens<T>[]>();
  for (const entry of entries) {
    const first = entry.ids[0];
    if (first === undefined) continue; // a name that tokenizes to nothing can never be written
    const list = byFirst.get(first) ?? [];
    list.push(entry);
    byFirst.set(first, list);
  }
  // A1111 sorts each list by length, longest first; the sort is stable, so equal lengths keep file order.
  for (const list of byFirst.values()) list.sort((a, b) => b.ids.length - a.ids.length);
  return {
    at(tokens, offset) {
      const candidates = byFirst.get(tokens[offset] as number);
      if (candidates === undefined) return undefined;
      for (const candidate of candidates) {
        const { ids } = candidate;
        if (offset + ids.length > tokens.length) continue;
        let same = true;
        for (let i = 1; i < ids.length && same; i++) same = tokens[offset + i] === ids[i];
        if (same) return { value: candidate.value, length: ids.length };
      }
      return undefined;
    },
  };
}
