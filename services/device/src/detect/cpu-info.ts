import type { CpuInfo as OsCpu } from "node:os";
import type { ResourceScope } from "./resource-scope.js";

export interface CpuInfo {
  readonly model: string;
  readonly logicalCores: number;
  /** Absent where the OS reports 0 (common in VMs). */
  readonly speedMhz?: number;
}

/** Cumulative CPU time over all cores, in ms; two samples give the utilization between them. */
export interface CpuTimes {
  readonly busyMs: number;
  readonly totalMs: number;
}

/** Model, core count and speed from `os.cpus()`. */
export function readCpuInfo(cpus: readonly OsCpu[]): CpuInfo {
  const model = cpus[0]?.model.trim().replace(/\s+/g, " ") || "unknown CPU";
  const speed = cpus[0]?.speed ?? 0;
  return { model, logicalCores: cpus.length, ...(speed > 0 ? { speedMhz: speed } : {}) };
}

export function sampleCpuTimes(cpus: readonly OsCpu[]): CpuTimes {
  let busyMs = 0;
  let totalMs = 0;
  for (const { times } of cpus) {
    const total = times.user + times.nice + times.sys + times.irq + times.idle;
    totalMs += total;
    busyMs += total - times.idle;
  }
  return { busyMs, totalMs };
}

/** Busy fraction (0–1) between two samples; undefined when no time passed. */
export function cpuUtilizationBetween(earlier: CpuTimes, later: CpuTimes): number | undefined {
  const total = later.totalMs - earlier.totalMs;
  if (total <= 0) return undefined;
  return Math.min(1, Math.max(0, (later.busyMs - earlier.busyMs) / total));
}

/**
 * Cores to plan for in a scope. Node: every logical core. Container: the cores this process's affinity
 * (`os.availableParallelism()`) and cgroup CPU quota allow, rounded down, at least 1.
 */
export function coresInScope(
  scope: ResourceScope,
  cores: { readonly logicalCores: number; readonly parallelism: number; readonly cpuLimit?: number },
): number {
  if (scope === "node") return cores.logicalCores;
  return Math.max(1, Math.min(cores.parallelism, Math.floor(cores.cpuLimit ?? cores.parallelism)));
}
