/** The ratio a result must reach against its baseline: at most `max`, or at least `min`. */
export type RatioTarget = { readonly max: number } | { readonly min: number };

/** One measured figure; `ratio` is always `value / baseline.value`, whatever the unit. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  ratio?: number;
  target?: RatioTarget;
}

/** A result compared with a baseline measured in the same run. */
export function versus(
  name: string,
  value: number,
  unit: string,
  baseline: { name: string; value: number },
  target?: RatioTarget,
): BenchResult {
  return { name, value, unit, baseline, ratio: value / baseline.value, ...(target ? { target } : {}) };
}

export function meetsTarget(result: BenchResult): boolean | undefined {
  const { ratio, target } = result;
  if (ratio === undefined || target === undefined) return undefined;
  return "max" in target ? ratio <= target.max : ratio >= target.min;
}
