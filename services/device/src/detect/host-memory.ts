import type { CgroupLimits } from "./cgroup-limits.js";

export interface HostMemory {
  readonly totalBytes: number;
  /** Memory this process can still take: the OS's available memory, capped by the cgroup's headroom. */
  readonly freeBytes: number;
  /** True when a cgroup limit below physical memory applies (a pod with resources.limits.memory). */
  readonly cgroupLimited: boolean;
}

/** Combines the OS view (`os.totalmem()`, `os.freemem()`) with the cgroup limit and working set. */
export function combineHostMemory(
  osTotalBytes: number,
  osFreeBytes: number,
  cgroup: CgroupLimits,
): HostMemory {
  const limit = cgroup.memoryLimitBytes;
  if (limit === undefined || limit >= osTotalBytes) {
    return { totalBytes: osTotalBytes, freeBytes: osFreeBytes, cgroupLimited: false };
  }
  const cgroupFree = Math.max(0, limit - (cgroup.memoryWorkingSetBytes ?? 0));
  return { totalBytes: limit, freeBytes: Math.min(osFreeBytes, cgroupFree), cgroupLimited: true };
}
