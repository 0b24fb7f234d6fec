import type { CgroupLimits } from "./cgroup-limits.js";
import type { NodeMemory } from "./proc-meminfo.js";
import type { ResourceScope } from "./resource-scope.js";

export interface HostMemory {
  readonly totalBytes: number;
  /** Memory that can still be taken in this scope. */
  readonly freeBytes: number;
}

/**
 * RAM in a scope. Node: the node's total and available memory. Container: the same, capped by this
 * process's cgroup limit less its working set where that limit is below the node's RAM.
 */
export function scopeHostMemory(node: NodeMemory, cgroup: CgroupLimits, scope: ResourceScope): HostMemory {
  const limit = cgroup.memoryLimitBytes;
  if (scope === "node" || limit === undefined || limit >= node.totalBytes) {
    return { totalBytes: node.totalBytes, freeBytes: node.availableBytes };
  }
  const cgroupFree = Math.max(0, limit - (cgroup.memoryWorkingSetBytes ?? 0));
  return { totalBytes: limit, freeBytes: Math.min(node.availableBytes, cgroupFree) };
}
