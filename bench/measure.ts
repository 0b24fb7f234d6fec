import { readFileSync } from "node:fs";

/** Median of a sample (sorts a copy). */
export function median(values: readonly number[]): number {
  return percentile(values, 0.5);
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error("percentile of an empty sample");
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

/** Latency of `call` made one at a time, in microseconds per call, after `warmup` unmeasured calls. */
export async function sequentialLatencies(
  call: () => Promise<unknown>,
  options: { warmup: number; count: number },
): Promise<number[]> {
  for (let i = 0; i < options.warmup; i++) await call();
  const micros: number[] = new Array(options.count);
  for (let i = 0; i < options.count; i++) {
    const started = performance.now();
    await call();
    micros[i] = (performance.now() - started) * 1000;
  }
  return micros;
}

export interface Throughput {
  readonly calls: number;
  readonly seconds: number;
  readonly perSecond: number;
}

/** Completed calls with `inFlight` calls kept outstanding for `durationMs`. */
export async function throughput(
  call: () => Promise<unknown>,
  options: { inFlight: number; durationMs: number },
): Promise<Throughput> {
  let calls = 0;
  const end = performance.now() + options.durationMs;
  const worker = async () => {
    while (performance.now() < end) {
      await call();
      calls++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: options.inFlight }, worker));
  const seconds = (performance.now() - started) / 1000;
  return { calls, seconds, perSecond: calls / seconds };
}

/**
 * CPU time (user + system) a process has used, in microseconds: µs-precise for this process, from
 * /proc in clock ticks (usually 10 ms) for another; NaN where /proc is missing.
 */
export function cpuMicros(pid: number): number {
  if (pid === process.pid) {
    const { user, system } = process.cpuUsage();
    return user + system;
  }
  try {
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

// sysconf(_SC_CLK_TCK): 100 on every Linux kernel configuration Node supports.
const CLOCK_TICKS = 100;
