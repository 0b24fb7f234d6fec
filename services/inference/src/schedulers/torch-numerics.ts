/**
 * float32 tensor arithmetic as PyTorch's CPU kernels do it. Every elementary float32 operation is the double
 * result rounded once (`Math.fround`), which is exact for + - * / and sqrt; what needs care is where torch
 * departs from the naive formula, reproduced here.
 */

export const f32 = Math.fround;

/** torch's CPU vector width for float32 in its AVX2 / NEON / generic kernels (AVX-512 builds use 16). */
const VECTOR_WIDTH = 8;

/**
 * `torch.linspace(start, end, steps, dtype=torch.float32)`: the first half counts up from `start`, the second
 * down from `end`, and vectorised blocks add `k * step` to the block's first value.
 */
export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) out[0] = start;
  if (steps <= 1) return out;
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const scalarAt = (idx: number) =>
    idx < halfway ? f32(s + f32(step * idx)) : f32(e - f32(step * (steps - idx - 1)));
  // torch's vectorized_loop takes two vectors per iteration and leaves the remainder to the scalar loop.
  let idx = 0;
  for (; idx + 2 * VECTOR_WIDTH <= steps; idx += 2 * VECTOR_WIDTH) {
    for (const blockStart of [idx, idx + VECTOR_WIDTH]) {
      const base = scalarAt(blockStart);
      for (let k = 0; k < VECTOR_WIDTH; k++) out[blockStart + k] = base + f32(k * step);
    }
  }
  for (; idx < steps; idx++) out[idx] = scalarAt(idx);
  return out;
}

/** `torch.cumprod` on CPU: the running product is kept in float64 and rounded on store. */
export function cumprodF32(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length);
  let product = 1;
  for (let i = 0; i < values.length; i++) {
    product *= values[i] as number;
    out[i] = product;
  }
  return out;
}

/**
 * torch's `lerp` in float32 (used by `torch.quantile`): it interpolates from whichever end is nearer to keep
 * the result exact at weight 0 and 1.
 */
export function lerpF32(start: number, end: number, weight: number): number {
  const diff = f32(end - start);
  return weight < 0.5 ? f32(start + f32(weight * diff)) : f32(end - f32(diff * f32(1 - weight)));
}
