import os from "node:os";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createHostDetector } from "../../src/detect/detect-host.js";
import type { ResourceScope } from "../../src/detect/resource-scope.js";
import { InsufficientMemoryError } from "../../src/errors/insufficient-memory-error.js";
import { recommendExecution } from "../../src/recommend/recommend-execution.js";
import { MIB } from "../../src/units/bytes.js";

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const NODE_TOTAL = 24684092 * 1024;
const NODE_AVAILABLE = 23526340 * 1024;
/** What the pod fixtures' memory.stat / cgroup files say is in use, less inactive page cache. */
const WORKING_SET = { "cgroup-v1-pod": 176267264 - 32 * MIB, "cgroup-v2-pod": 148897792 - 32 * MIB };

const detect = (scope: ResourceScope, cgroup: string, proc = "proc") =>
  createHostDetector({
    scope,
    procRoot: fixture(proc),
    cgroupRoot: fixture(cgroup),
    nvidiaSmiCommand: "nvidia-smi-not-installed",
  }).detect();

/** A small model: 512 MiB of weights, 64 MiB per image; fits the 24 GiB node, not a 256 MiB pod. */
const estimate = {
  weightsBytes: 512 * MIB,
  activationBytesPerImage: 64 * MIB,
  precision: "float32" as const,
};

describe.each(Object.entries(WORKING_SET))(
  "a device service in a 256 MiB, 0.5 CPU pod (%s)",
  (cgroup, workingSet) => {
    it("node scope: reports the node's RAM and cores, and its own pod limits beside them", async () => {
      const host = await detect("node", cgroup);
      expect(host.scope).toBe("node");
      expect(host.memory).toEqual({ totalBytes: NODE_TOTAL, freeBytes: NODE_AVAILABLE });
      expect(host.devices[0]?.memory).toEqual(host.memory);
      expect(host.cpu.effectiveCores).toBe(os.cpus().length);
      expect(host.container).toEqual({
        memoryLimitBytes: 256 * MIB,
        memoryWorkingSetBytes: workingSet,
        cpuLimit: 0.5,
      });
      expect(host.problems).toEqual([]);
    });

    it("container scope: reports what the pod may still use", async () => {
      const host = await detect("container", cgroup);
      expect(host.scope).toBe("container");
      expect(host.memory).toEqual({ totalBytes: 256 * MIB, freeBytes: 256 * MIB - workingSet });
      expect(host.devices[0]?.memory).toEqual(host.memory);
      expect(host.cpu.effectiveCores).toBe(1);
      expect(host.container.memoryLimitBytes).toBe(256 * MIB);
    });

    it("plans with the scope's numbers: the node fits the model, the pod does not", async () => {
      const node = recommendExecution({ host: await detect("node", cgroup), estimate });
      expect(node).toMatchObject({ deviceId: "cpu", maxBatch: 8, intraOpThreads: os.cpus().length });
      expect(node.availableBytes).toBeCloseTo(NODE_AVAILABLE * 0.9, 0);
      const container = await detect("container", cgroup);
      expect(() => recommendExecution({ host: container, estimate })).toThrow(InsufficientMemoryError);
    });
  },
);

describe("node scope where lxcfs serves /proc/meminfo", () => {
  it("says that the figures are the container's, since it cannot see the node's", async () => {
    const host = await detect("node", "cgroup-v2-pod", "proc-lxcfs");
    expect(host.memory.totalBytes).toBe(256 * MIB);
    expect(host.problems).toEqual([
      `${fixture("proc-lxcfs")}/meminfo is served by lxcfs: node scope reports the container's RAM`,
    ]);
  });
});
