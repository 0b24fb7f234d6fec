import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  parseCfsQuota,
  parseCpuMax,
  parseMemoryLimit,
  readCgroupLimits,
} from "../../src/detect/cgroup-limits.js";
import { cpuUtilizationBetween, readCpuInfo, sampleCpuTimes } from "../../src/detect/cpu-info.js";
import { combineHostMemory } from "../../src/detect/host-memory.js";
import { GIB, MIB } from "../../src/units/bytes.js";

const scratch = mkdtempSync(join(os.tmpdir(), "dmesh-cgroup-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function cgroupTree(name: string, files: Record<string, string>): string {
  const root = join(scratch, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe("cgroup limits", () => {
  it("parses limit files", () => {
    expect(parseMemoryLimit("max\n")).toBeUndefined();
    expect(parseMemoryLimit("9223372036854771712\n")).toBeUndefined(); // cgroup v1 "unlimited"
    expect(parseMemoryLimit("8589934592\n")).toBe(8 * GIB);
    expect(parseMemoryLimit(undefined)).toBeUndefined();
    expect(parseCpuMax("max 100000\n")).toBeUndefined();
    expect(parseCpuMax("150000 100000\n")).toBe(1.5);
    expect(parseCfsQuota("-1", "100000")).toBeUndefined();
    expect(parseCfsQuota("400000\n", "100000\n")).toBe(4);
  });

  it("reads a cgroup v2 pod limit, working set = usage less inactive page cache", async () => {
    const root = cgroupTree("v2", {
      "memory.max": "8589934592\n",
      "memory.current": `${3 * GIB}\n`,
      "memory.stat": `anon ${2 * GIB}\nfile ${GIB}\ninactive_file ${512 * MIB}\nactive_file ${512 * MIB}\n`,
      "cpu.max": "200000 100000\n",
    });
    expect(await readCgroupLimits(root)).toEqual({
      memoryLimitBytes: 8 * GIB,
      memoryWorkingSetBytes: 3 * GIB - 512 * MIB,
      cpuLimit: 2,
    });
  });

  it("reads cgroup v1 controllers, with unlimited values left out", async () => {
    const root = cgroupTree("v1", {
      "memory/memory.limit_in_bytes": "9223372036854771712\n",
      "memory/memory.usage_in_bytes": "235679744\n",
      "memory/memory.stat": "cache 1000\ntotal_inactive_file 4096\n",
      "cpu/cpu.cfs_quota_us": "-1\n",
      "cpu/cpu.cfs_period_us": "100000\n",
    });
    expect(await readCgroupLimits(root)).toEqual({ memoryWorkingSetBytes: 235679744 - 4096 });
  });

  it("reads this host without failing", async () => {
    const limits = await readCgroupLimits();
    if (limits.memoryLimitBytes !== undefined) expect(limits.memoryLimitBytes).toBeGreaterThan(0);
    if (limits.cpuLimit !== undefined) expect(limits.cpuLimit).toBeGreaterThan(0);
  });
});

describe("host memory", () => {
  it("caps total and free memory by a cgroup limit below physical memory", () => {
    expect(
      combineHostMemory(64 * GIB, 40 * GIB, { memoryLimitBytes: 8 * GIB, memoryWorkingSetBytes: 3 * GIB }),
    ).toEqual({
      totalBytes: 8 * GIB,
      freeBytes: 5 * GIB,
      cgroupLimited: true,
    });
    // The node can be tighter than the pod's headroom.
    expect(
      combineHostMemory(64 * GIB, 2 * GIB, { memoryLimitBytes: 8 * GIB, memoryWorkingSetBytes: GIB })
        .freeBytes,
    ).toBe(2 * GIB);
    expect(combineHostMemory(16 * GIB, 9 * GIB, {})).toEqual({
      totalBytes: 16 * GIB,
      freeBytes: 9 * GIB,
      cgroupLimited: false,
    });
  });
});

describe("cpu", () => {
  it("reads this host's CPUs", () => {
    const info = readCpuInfo(os.cpus());
    expect(info.model.length).toBeGreaterThan(0);
    expect(info.logicalCores).toBe(os.cpus().length);
    if (info.speedMhz !== undefined) expect(info.speedMhz).toBeGreaterThan(0);
  });

  it("measures utilization between two samples", () => {
    const before = sampleCpuTimes(os.cpus());
    const until = Date.now() + 150;
    while (Date.now() < until) Math.sqrt(Math.random()); // keep one core busy
    const utilization = cpuUtilizationBetween(before, sampleCpuTimes(os.cpus()));
    expect(utilization).toBeGreaterThan(0);
    expect(utilization).toBeLessThanOrEqual(1);
    expect(cpuUtilizationBetween(before, before)).toBeUndefined();
  });

  it("reports an unknown speed as absent", () => {
    const times = { user: 1, nice: 0, sys: 1, idle: 1, irq: 0 };
    expect(readCpuInfo([{ model: "  AMD   EPYC ", speed: 0, times }])).toEqual({
      model: "AMD EPYC",
      logicalCores: 1,
    });
  });
});
