import os from "node:os";
import { readCgroupLimits } from "./cgroup-limits.js";
import { type CpuTimes, cpuUtilizationBetween, readCpuInfo, sampleCpuTimes } from "./cpu-info.js";
import { listRenderNodes } from "./drm-render-nodes.js";
import { assessExecutionProviders, gatherProviderFacts } from "./execution-providers.js";
import { buildDevices, type HostSummary } from "./host-devices.js";
import { combineHostMemory } from "./host-memory.js";
import { queryNvidiaSmi } from "./nvidia-smi.js";
import { listOnnxBackends } from "./onnx-backends.js";

export interface HostDetectorOptions {
  readonly nvidiaSmiCommand?: string;
  readonly nvidiaSmiTimeoutMs?: number;
  readonly cgroupRoot?: string;
  readonly drmRoot?: string;
}

export interface HostDetector {
  /** Probes the host now. CPU utilization covers the time since the previous call (absent on the first). */
  detect(signal?: AbortSignal): Promise<HostSummary>;
}

/** Detects CPU, memory (cgroup-aware), NVIDIA GPUs, other GPUs and usable ONNX Runtime providers. */
export function createHostDetector(options: HostDetectorOptions = {}): HostDetector {
  let previousCpuTimes: CpuTimes | undefined;
  return {
    async detect(signal) {
      const cpus = os.cpus();
      const cpuTimes = sampleCpuTimes(cpus);
      const cpuUtilization = previousCpuTimes && cpuUtilizationBetween(previousCpuTimes, cpuTimes);
      previousCpuTimes = cpuTimes;

      const [cgroup, nvidia, renderNodes] = await Promise.all([
        readCgroupLimits(options.cgroupRoot),
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
      const cpu = readCpuInfo(cpus);
      const memory = combineHostMemory(os.totalmem(), os.freemem(), cgroup);
      const parallelism = os.availableParallelism();
      return {
        hostname: os.hostname(),
        platform: process.platform,
        arch: process.arch,
        cpu: {
          ...cpu,
          effectiveCores: Math.max(1, Math.min(parallelism, Math.floor(cgroup.cpuLimit ?? parallelism))),
        },
        memory,
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
        problems: nvidia.problem ? [nvidia.problem] : [],
      };
    },
  };
}
