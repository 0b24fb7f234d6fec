import { readFileSync } from "node:fs";

/** Median of a sample (sorts a copy); of an even count, the mean of the middle two. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of an empty sample");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Something measured against others: its call, and optionally the CPU time it makes processes use. */
export interface Contender {
  call(): Promise<unknown>;
  /** Cumulative CPU microseconds of every process the call runs in. */
  cpuMicros?(): number;
}

/** Quartiles of the per-round ratios of one contender to another. */
export interface PairedRatio {
  median: number;
  q1: number;
  q3: number;
  rounds: number;
}

/**
 * The median of `values[r] / baselines[r]` over rounds `r` in which both took turns back to back: each
 * round's pair saw the same moment of a machine others share, so a slow spell moves both, not the ratio.
 */
export function pairedRatio(values: readonly number[], baselines: readonly number[]): PairedRatio {
  const ratios = values.map((v, r) => v / (baselines[r] as number)).sort((a, b) => a - b);
  const at = (q: number) => ratios[Math.min(ratios.length - 1, Math.floor(ratios.length * q))] as number;
  return { median: median(ratios), q1: at(0.25), q3: at(0.75), rounds: ratios.length };
}

/**
 * The contenders in the order they take their turns in `round`: rotated every round, so that none always
 * follows the same other one (whose leftovers, a collection or a busy child process, would land on it).
 */
function turnOrder<T>(contenders: readonly T[], round: number): [number, T][] {
  const n = contenders.length;
  return contenders.map((_, k) => {
    const c = (k + round) % n;
    return [c, contenders[c] as T];
  });
}

/** One contender's latencies in microseconds: every sample, and the median of each round's block. */
export interface Latencies {
  all: number[];
  rounds: number[];
}

/**
 * Latency of each contender's call made one at a time, in microseconds, the contenders taking turns in runs
 * of `block` calls: on a machine others share, every contender sees the same busy and quiet moments, and
 * what a server does after answering (its collector, its timers) lands on its own next call rather than on
 * another contender's. The first `settle` calls of each turn are not timed: they measure a process waking
 * after it sat idle through the others' turns (cold caches), which a hop under steady use does not pay.
 */
export async function interleavedLatencies(
  contenders: readonly Contender[],
  options: { warmup: number; count: number; block: number; settle: number },
): Promise<Latencies[]> {
  const latencies = contenders.map((): Latencies => ({ all: [], rounds: [] }));
  for (let done = -options.warmup, round = 0; done < options.count; done += options.block, round++) {
    for (const [c, contender] of turnOrder(contenders, round)) {
      for (let i = 0; i < options.settle; i++) await contender.call();
      const block: number[] = [];
      for (let i = 0; i < options.block; i++) {
        const started = performance.now();
        await contender.call();
        if (done + i >= 0 && done + i < options.count) block.push((performance.now() - started) * 1000);
      }
      if (block.length === 0) continue;
      const own = latencies[c] as Latencies;
      own.all.push(...block);
      own.rounds.push(median(block));
    }
  }
  return latencies;
}

export interface Tally {
  calls: number;
  seconds: number;
  /** NaN where the contender has no CPU reading. */
  cpuMicros: number;
  /** Calls per second in each measured window, in round order. */
  rounds: number[];
}

/** Calls per second. */
export function callsPerSecond(tally: Tally): number {
  return tally.calls / tally.seconds;
}

/**
 * Calls completed with `inFlight` outstanding, the contenders taking turns over `windows` windows of
 * `windowMs` each (after one unmeasured window each), for the same reason as `interleavedLatencies`. Each
 * turn's first `settleMs` run at full load untimed, as that function's first calls of a turn do.
 */
export async function interleavedThroughput(
  contenders: readonly Contender[],
  options: { inFlight: number; windowMs: number; windows: number; settleMs?: number },
): Promise<Tally[]> {
  const tallies = contenders.map((): Tally => ({ calls: 0, seconds: 0, cpuMicros: 0, rounds: [] }));
  for (let w = -1; w < options.windows; w++) {
    for (const [c, contender] of turnOrder(contenders, w + 1)) {
      const window = await throughput(contender, options.inFlight, options.settleMs ?? 0, options.windowMs);
      if (w < 0) continue;
      const tally = tallies[c] as Tally;
      tally.calls += window.calls;
      tally.seconds += window.seconds;
      tally.cpuMicros += window.cpuMicros;
      tally.rounds.push(window.calls / window.seconds);
    }
  }
  return tallies;
}

/**
 * Makes `calls` calls per contender, `inFlight` at a time, measuring nothing: a long-running service's code
 * is optimized, and a transport with more JavaScript on its path takes more calls to get there than a
 * measurement's own short warm-up gives it.
 */
export async function warmUp(
  contenders: readonly Contender[],
  calls: number,
  inFlight: number,
): Promise<void> {
  for (const contender of contenders) {
    let left = calls;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (left-- > 0) await contender.call();
      }),
    );
  }
}

/**
 * Calls completed with `inFlight` kept outstanding for `durationMs`, counted (with the CPU time they took)
 * from `settleMs` after the first calls went out, the load kept up across that mark.
 */
async function throughput(
  contender: Contender,
  inFlight: number,
  settleMs: number,
  durationMs: number,
): Promise<{ calls: number; seconds: number; cpuMicros: number }> {
  let calls = 0;
  let from = performance.now() + settleMs;
  const end = from + durationMs;
  let cpuBefore = Number.NaN;
  const mark = settleMs > 0 ? setTimeout(() => startCounting(), settleMs) : undefined;
  const startCounting = () => {
    calls = 0;
    from = performance.now();
    cpuBefore = contender.cpuMicros?.() ?? Number.NaN;
  };
  if (!mark) startCounting();
  const worker = async () => {
    while (performance.now() < end) {
      await contender.call();
      calls++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  clearTimeout(mark);
  const cpuMicros = (contender.cpuMicros?.() ?? Number.NaN) - cpuBefore;
  return { calls, seconds: (performance.now() - from) / 1000, cpuMicros };
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
