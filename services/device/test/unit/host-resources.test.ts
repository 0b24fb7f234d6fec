import { readFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  parseCfsQuota,
  parseCpuMax,
  parseMemoryLimit,
  readCgroupLimits,
} from "../../src/detect/cgroup-limits.js";
import {
  coresInScope,
  cpuUtilizationBetween,
  readCpuInfo,
  sampleCpuTimes,
} from "../../src/detect/cpu-info.js";
import { scopeHostMemory } from "../../src/detect/host-memory.js";
import { meminfoFromLxcfs, mountsLxcfsOverMeminfo } from "../../src/detect/lxcfs-mounts.js";
import { parseMeminfo, readMeminfo } from "../../src/detect/proc-meminfo.js";
import { GIB, MIB } from "../../src/units/bytes.js";

/** A fixture directory (see test/fixtures/README.md for where each was recorded). */
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const KIB = 1024;
/** The recorded /proc/meminfo: a 24 GiB VM. */
const NODE = { totalBytes: 24684092 * KIB, availableBytes: 23526340 * KIB };
/** The recorded cgroup v1 pod: 256 MiB and 0.5 CPU, 168 MiB used of which 32 MiB inactive page cache. */
const V1_POD = { memoryLimitBytes: 256 * MIB, memoryWorkingSetBytes: 176267264 - 32 * MIB, cpuLimit: 0.5 };

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

  it("reads a cgroup v1 pod: limit_in_bytes, usage_in_bytes less total_inactive_file, cfs quota", async () => {
    expect(await readCgroupLimits(fixture("cgroup-v1-pod"))).toEqual(V1_POD);
  });

  it("reads an unlimited cgroup v1 (a page-rounded 2^63-1 and a quota of -1) as no limits", async () => {
    expect(await readCgroupLimits(fixture("cgroup-v1-unlimited"))).toEqual({
      memoryWorkingSetBytes: 1193852928 - 497934336,
    });
  });

  it("reads a cgroup v2 pod: memory.max, memory.current less inactive_file, cpu.max", async () => {
    expect(await readCgroupLimits(fixture("cgroup-v2-pod"))).toEqual({
      memoryLimitBytes: 256 * MIB,
      memoryWorkingSetBytes: 148897792 - 32 * MIB,
      cpuLimit: 0.5,
    });
  });

  it("reads an unlimited cgroup v2 (memory.max and cpu.max say max) as no limits", async () => {
    expect(await readCgroupLimits(fixture("cgroup-v2-unlimited"))).toEqual({
      memoryWorkingSetBytes: 1367257088 - 200 * MIB,
    });
  });

  it("reads this host without failing", async () => {
    const limits = await readCgroupLimits();
    if (limits.memoryLimitBytes !== undefined) expect(limits.memoryLimitBytes).toBeGreaterThan(0);
    if (limits.cpuLimit !== undefined) expect(limits.cpuLimit).toBeGreaterThan(0);
  });
});

describe("/proc/meminfo", () => {
  it("reads MemTotal and MemAvailable in bytes", async () => {
    expect(await readMeminfo(fixture("proc"))).toEqual(NODE);
  });

  it("falls back to MemFree where the kernel has no MemAvailable", () => {
    expect(parseMeminfo("MemTotal:        2048 kB\nMemFree:          512 kB\nBuffers: 0 kB\n")).toEqual({
      totalBytes: 2 * MIB,
      availableBytes: 512 * KIB,
    });
  });

  it("names the file when it is not a meminfo, and is absent where there is no procfs", async () => {
    expect(() => parseMeminfo("cpu  1 2 3\n", "/host/proc/meminfo")).toThrow(
      /\/host\/proc\/meminfo: no MemTotal/,
    );
    expect(await readMeminfo(fixture("cgroup-v2-pod"))).toBeUndefined();
  });

  it("reads this host's meminfo as node.js does (os.totalmem reads MemTotal)", async () => {
    const meminfo = await readMeminfo();
    if (process.platform === "linux") expect(meminfo?.totalBytes).toBe(os.totalmem());
    else expect(meminfo).toBeUndefined();
  });

  it("knows when lxcfs serves meminfo (then it shows the container's RAM, not the node's)", async () => {
    expect(await meminfoFromLxcfs(fixture("proc-lxcfs"))).toBe(true);
    expect(await meminfoFromLxcfs(fixture("proc"))).toBe(false); // no mountinfo recorded: unknown = no
    const mountinfo = readFileSync(`${fixture("proc-lxcfs")}/self/mountinfo`, "utf8");
    const withoutMeminfo = mountinfo
      .split("\n")
      .filter((l) => !l.includes(" /proc/meminfo "))
      .join("\n");
    expect(mountsLxcfsOverMeminfo(withoutMeminfo)).toBe(false);
  });
});

describe("host memory in each scope", () => {
  it("node scope: the node's RAM, whatever this process's cgroup limit", () => {
    expect(scopeHostMemory(NODE, V1_POD, "node")).toEqual({
      totalBytes: NODE.totalBytes,
      freeBytes: NODE.availableBytes,
    });
  });

  it("container scope: capped by a cgroup limit below the node's RAM, free = limit less working set", () => {
    expect(scopeHostMemory(NODE, V1_POD, "container")).toEqual({
      totalBytes: 256 * MIB,
      freeBytes: 256 * MIB - V1_POD.memoryWorkingSetBytes,
    });
    // The node can be tighter than the pod's headroom.
    const tight = { totalBytes: 64 * GIB, availableBytes: 2 * GIB };
    const pod = { memoryLimitBytes: 8 * GIB, memoryWorkingSetBytes: GIB };
    expect(scopeHostMemory(tight, pod, "container").freeBytes).toBe(2 * GIB);
    // No limit, or one above the node's RAM: the node's figures.
    expect(scopeHostMemory(NODE, {}, "container")).toEqual(scopeHostMemory(NODE, V1_POD, "node"));
    expect(scopeHostMemory(NODE, { memoryLimitBytes: 64 * GIB }, "container").totalBytes).toBe(
      NODE.totalBytes,
    );
  });
});

describe("cpu", () => {
  it("reads this host's CPUs", () => {
    const info = readCpuInfo(os.cpus());
    expect(info.model.length).toBeGreaterThan(0);
    expect(info.logicalCores).toBe(os.cpus().length);
    if (info.speedMhz !== undefined) expect(info.speedMhz).toBeGreaterThan(0);
  });

  it("counts the node's cores in node scope, the quota's (rounded down, at least 1) in container scope", () => {
    const cores = { logicalCores: 64, parallelism: 48, cpuLimit: 0.5 };
    expect(coresInScope("node", cores)).toBe(64);
    expect(coresInScope("container", cores)).toBe(1);
    expect(coresInScope("container", { ...cores, cpuLimit: 6.5 })).toBe(6);
    expect(coresInScope("container", { logicalCores: 64, parallelism: 48 })).toBe(48);
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
