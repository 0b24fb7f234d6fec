/**
 * A1111's "Original" emphasis (modules/sd_emphasis.py, `EmphasisOriginal.after_transformers`), applied
 * to one encoded chunk: scale each token's hidden state by its weight, then rescale everything so the
 * mean over the chunk is what it was (`z *= weights; z *= original_mean / new_mean`).
 *
 * `hidden` is [tokens, dim] row-major with `weights.length` tokens; returns a new array.
 */
export function applyPromptWeights(hidden: Float32Array, weights: ArrayLike<number>): Float32Array {
  const tokens = weights.length;
  if (tokens === 0 || hidden.length % tokens !== 0) {
    throw new RangeError(`hidden states of length ${hidden.length} do not split into ${tokens} tokens`);
  }
  const dim = hidden.length / tokens;
  const weighted = new Float32Array(hidden.length);
  let originalSum = 0;
  let weightedSum = 0;
  for (let t = 0; t < tokens; t++) {
    const weight = weights[t] as number;
    for (let i = t * dim; i < (t + 1) * dim; i++) {
      const value = hidden[i] as number;
      originalSum += value;
      weighted[i] = value * weight;
      weightedSum += weighted[i] as number;
    }
  }
  // A1111 divides without a guard; a zero mean after weighting gives non-finite values there too.
  const scale = originalSum / weightedSum;
  for (let i = 0; i < weighted.length; i++) weighted[i] = (weighted[i] as number) * scale;
  return weighted;
}
