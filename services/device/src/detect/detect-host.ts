import os from "node:os";
import { join } from "node:path";
import { readCgroupLimits } from "./cgroup-limits.js";
import {
  type CpuTimes,
  coresInScope,
  cpuUtilizationBetween,
  readCpuInfo,
  sampleCpuTimes,
} from "./cpu-info.js";
import { listRenderNodes } from "./drm-render-nodes.js";
import { assessExecutionProviders, gatherProviderFacts } from "./execution-providers.js";
import { buildDevices, type HostSummary } from "./host-devices.js";
import { scopeHostMemory } from "./host-memory.js";
import { meminfoFromLxcfs } from "./lxcfs-mounts.js";
import { queryNvidiaSmi } from "./nvidia-smi.js";
import { listOnnxBackends } from "./onnx-backends.js";
import { type NodeMemory, readMeminfo } from "./proc-meminfo.js";
import type { ResourceScope } from "./resource-scope.js";

export interface HostDetectorOptions {
  /** Default "container": right wherever the service and the work it plans for share one cgroup. */
  readonly scope?: ResourceScope;
  readonly nvidiaSmiCommand?: string;
  readonly nvidiaSmiTimeoutMs?: number;
  /** Where procfs is mounted (meminfo, self/mountinfo); default /proc. */
  readonly procRoot?: string;
  /** Where this process's cgroup is mounted; default /sys/fs/cgroup. */
  readonly cgroupRoot?: string;
  readonly drmRoot?: string;
}

export interface HostDetector {
  /** Probes the host now. CPU utilization covers the time since the previous call (absent on the first). */
  detect(signal?: AbortSignal): Promise<HostSummary>;
}

/** Detects CPU, memory (node-wide or cgroup-capped), NVIDIA GPUs, other GPUs and usable ONNX Runtime providers. */
export function createHostDetector(options: HostDetectorOptions = {}): HostDetector {
  const scope = options.scope ?? "container";
  const procRoot = options.procRoot ?? "/proc";
  let previousCpuTimes: CpuTimes | undefined;
  return {
    async detect(signal) {
      const cpus = os.cpus();
      const cpuTimes = sampleCpuTimes(cpus);
      const cpuUtilization = previousCpuTimes && cpuUtilizationBetween(previousCpuTimes, cpuTimes);
      previousCpuTimes = cpuTimes;

      const [cgroup, meminfo, lxcfs, nvidia, renderNodes] = await Promise.all([
        readCgroupLimits(options.cgroupRoot),
        readMeminfo(procRoot),
        scope === "node" ? meminfoFromLxcfs(procRoot) : false,
        queryNvidiaSmi({ command: options.nvidiaSmiCommand, timeoutMs: options.nvidiaSmiTimeoutMs, signal }),
        listRenderNodes(options.drmRoot),
      ]);
      const backends = listOnnxBackends();
      const providers = assessExecutionProviders(
        await gatherProviderFacts({
          backends,
          hasNvidiaGpu: nvidia.gpus.length > 0,
          hasRenderNode: renderNodes.length > 0,
          signal,
        }),
      );
      const problems = nvidia.problem ? [nvidia.problem] : [];
      if (lxcfs)
        problems.push(
          `${join(procRoot, "meminfo")} is served by lxcfs: node scope reports the container's RAM`,
        );
      if (!meminfo && process.platform === "linux")
        problems.push(`no ${join(procRoot, "meminfo")}: RAM taken from os.totalmem()/os.freemem()`);
      // Outside Linux the OS figures are the machine's (and cgroups do not exist).
      const node: NodeMemory = meminfo ?? { totalBytes: os.totalmem(), availableBytes: os.freemem() };
      const memory = scopeHostMemory(node, cgroup, scope);
      const cpu = readCpuInfo(cpus);
      return {
        hostname: os.hostname(),
        platform: process.platform,
        arch: process.arch,
        scope,
        cpu: {
          ...cpu,
          effectiveCores: coresInScope(scope, {
            logicalCores: cpu.logicalCores,
            parallelism: os.availableParallelism(),
            cpuLimit: cgroup.cpuLimit,
          }),
        },
        memory,
        container: cgroup,
        devices: buildDevices({
          platform: process.platform,
          cpu,
          memory,
          cpuUtilization,
          nvidiaGpus: nvidia.gpus,
          renderNodes,
          providers,
        }),
        executionProviders: providers,
        problems,
      };
    },
  };
}
