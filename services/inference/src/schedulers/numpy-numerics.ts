/**
 * The few NumPy float64 routines diffusers builds schedules with, reproduced operation for operation so that
 * timesteps and sigmas come out bit-identical (NumPy rounds half to even, fills `arange` from its first step,
 * and interpolates with one slope per interval).
 */

/** `np.linspace(start, stop, num, endpoint)` in float64. */
export function linspace(start: number, stop: number, num: number, endpoint = true): number[] {
  const div = endpoint ? num - 1 : num;
  const delta = stop - start;
  const out: number[] = [];
  if (div > 0) {
    const step = delta / div;
    for (let i = 0; i < num; i++) out.push((step === 0 ? (i / div) * delta : i * step) + start);
  } else {
    for (let i = 0; i < num; i++) out.push(i * delta + start);
  }
  if (endpoint && num > 1) out[num - 1] = stop;
  return out;
}

/** `np.arange(start, stop, step)` for float steps: NumPy writes start and start + step, then start + i * delta. */
export function arange(start: number, stop: number, step: number): number[] {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const out: number[] = [];
  if (length > 0) out.push(start);
  if (length > 1) out.push(start + step);
  const delta = start + step - start;
  for (let i = 2; i < length; i++) out.push(start + i * delta);
  return out;
}

/** `np.round` / `np.rint`: round half to even. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const frac = x - floor;
  if (frac > 0.5) return floor + 1;
  if (frac < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** `np.interp(x, xp, fp)` for increasing `xp`. */
export function interp(x: number, xp: ArrayLike<number>, fp: ArrayLike<number>): number {
  const n = xp.length;
  const at = (a: ArrayLike<number>, i: number) => a[i] as number;
  if (Number.isNaN(x)) return x;
  if (x < at(xp, 0)) return at(fp, 0);
  if (x >= at(xp, n - 1)) return at(fp, n - 1);
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (at(xp, mid) <= x) lo = mid;
    else hi = mid;
  }
  if (at(xp, lo) === x) return at(fp, lo);
  const slope = (at(fp, lo + 1) - at(fp, lo)) / (at(xp, lo + 1) - at(xp, lo));
  return slope * (x - at(xp, lo)) + at(fp, lo);
}
