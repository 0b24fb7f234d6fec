import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** What the container runtime (a pod's resources.limits) allows this process, where cgroups say so. */
export interface CgroupLimits {
  readonly memoryLimitBytes?: number;
  /** Usage minus inactive page cache: what the kubelet calls the working set and evicts on. */
  readonly memoryWorkingSetBytes?: number;
  /** CPU quota in cores (cpu.max or cfs_quota_us / cfs_period_us). */
  readonly cpuLimit?: number;
}

/** cgroup v1 reports "no limit" as a page-rounded 2^63 - 1; anything this large means unlimited. */
const UNLIMITED_FROM = 2 ** 60;

/** Reads cgroup v2 files at `root`, else the v1 memory and cpu controllers under it. */
export async function readCgroupLimits(root = "/sys/fs/cgroup"): Promise<CgroupLimits> {
  const read = (path: string) => readFile(join(root, path), "utf8").catch(() => undefined);
  const v2Max = await read("memory.max");
  const v2Cpu = await read("cpu.max");
  if (v2Max !== undefined || v2Cpu !== undefined) {
    return {
      memoryLimitBytes: parseMemoryLimit(v2Max),
      memoryWorkingSetBytes: workingSet(
        await read("memory.current"),
        await read("memory.stat"),
        "inactive_file",
      ),
      cpuLimit: parseCpuMax(v2Cpu),
    };
  }
  const [quota, period] = [await read("cpu/cpu.cfs_quota_us"), await read("cpu/cpu.cfs_period_us")];
  return {
    memoryLimitBytes: parseMemoryLimit(await read("memory/memory.limit_in_bytes")),
    memoryWorkingSetBytes: workingSet(
      await read("memory/memory.usage_in_bytes"),
      await read("memory/memory.stat"),
      "total_inactive_file",
    ),
    cpuLimit: quota === undefined || period === undefined ? undefined : parseCfsQuota(quota, period),
  };
}

/** "max" or a huge v1 value → undefined; otherwise bytes. */
export function parseMemoryLimit(text: string | undefined): number | undefined {
  const value = parseCount(text);
  return value === undefined || value >= UNLIMITED_FROM ? undefined : value;
}

/** cgroup v2 `cpu.max`: "max 100000" → undefined, "150000 100000" → 1.5. */
export function parseCpuMax(text: string | undefined): number | undefined {
  const [quota, period] = (text ?? "").trim().split(/\s+/);
  if (quota === undefined || quota === "max" || period === undefined) return undefined;
  return parseCfsQuota(quota, period);
}

/** cgroup v1 quota and period in µs; a quota of -1 means unlimited. */
export function parseCfsQuota(quotaText: string, periodText: string): number | undefined {
  const quota = Number(quotaText.trim());
  const period = Number(periodText.trim());
  return quota > 0 && period > 0 ? quota / period : undefined;
}

function workingSet(usageText: string | undefined, statText: string | undefined, inactiveKey: string) {
  const usage = parseCount(usageText);
  if (usage === undefined) return undefined;
  const line = statText?.split("\n").find((l) => l.startsWith(`${inactiveKey} `));
  const inactive = parseCount(line?.slice(inactiveKey.length + 1)) ?? 0;
  return Math.max(0, usage - inactive);
}

function parseCount(text: string | undefined): number | undefined {
  const trimmed = text?.trim();
  if (!trimmed || !/^\d+$/.test(trimmed)) return undefined;
  return Number(trimmed);
}
