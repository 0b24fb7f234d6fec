import type { PairedRatio } from "./measure.js";

/** The ratio a result must reach against its baseline: at most `max`, or at least `min`. */
export type RatioTarget = { readonly max: number } | { readonly min: number };

/**
 * One measured figure. `ratio` is `value / baseline.value`, whatever the unit, or, where the two took turns
 * round by round, the median of the rounds' ratios (`rounds` then holds their quartiles).
 */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  ratio?: number;
  rounds?: PairedRatio;
  target?: RatioTarget;
}

/** A result compared with a baseline measured in the same run; `paired`, the per-round comparison. */
export function versus(
  name: string,
  value: number,
  unit: string,
  baseline: { name: string; value: number },
  target?: RatioTarget,
  paired?: PairedRatio,
): BenchResult {
  return {
    name,
    value,
    unit,
    baseline,
    ratio: paired ? paired.median : value / baseline.value,
    ...(paired ? { rounds: paired } : {}),
    ...(target ? { target } : {}),
  };
}

export function meetsTarget(result: BenchResult): boolean | undefined {
  const { ratio, target } = result;
  if (ratio === undefined || target === undefined) return undefined;
  return "max" in target ? ratio <= target.max : ratio >= target.min;
}
