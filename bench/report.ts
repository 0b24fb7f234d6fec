import { type BenchResult, meetsTarget } from "./bench-result.js";

function formatNumber(value: number): string {
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function formatTarget(result: BenchResult): string {
  const met = meetsTarget(result);
  if (met === undefined || !result.target) return "";
  const bound =
    "max" in result.target ? `≤ ${result.target.max.toFixed(2)}` : `≥ ${result.target.min.toFixed(2)}`;
  return `${bound} ${met ? "ok" : "MISSED"}`;
}

/**
 * One aligned table: figure, its baseline from the same run, the ratio (value/baseline, or the median of
 * per-round ratios where the two took turns, with how many rounds and their interquartile range) and the
 * target it had.
 */
export function formatTable(results: readonly BenchResult[]): string {
  const header = [
    "benchmark",
    "value",
    "unit",
    "baseline",
    "baseline value",
    "ratio",
    "rounds (IQR)",
    "target",
  ];
  const rows = results.map((r) => [
    r.name,
    formatNumber(r.value),
    r.unit,
    r.baseline?.name ?? "",
    r.baseline ? formatNumber(r.baseline.value) : "",
    r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}x`,
    r.rounds ? `${r.rounds.rounds}: ${r.rounds.q1.toFixed(2)}–${r.rounds.q3.toFixed(2)}` : "",
    formatTarget(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const numeric = new Set([1, 4, 5]);
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
