import type { CgroupLimits } from "./cgroup-limits.js";
import type { CpuInfo } from "./cpu-info.js";
import type { RenderNode } from "./drm-render-nodes.js";
import type { ExecutionProviderName, ExecutionProviderStatus } from "./execution-providers.js";
import type { HostMemory } from "./host-memory.js";
import type { NvidiaGpu } from "./nvidia-smi.js";
import type { ResourceScope } from "./resource-scope.js";

export type DeviceKind = "cpu" | "cuda" | "dml" | "coreml" | "webgpu";

/** A compute device as the mesh schedules onto it. Unknown readings are absent, never guessed. */
export interface DeviceInfo {
  /** Stable within a host: "cpu", "cuda:0", "dml:0", "coreml:0", "webgpu:0". */
  readonly id: string;
  readonly kind: DeviceKind;
  readonly name: string;
  readonly memory: { readonly totalBytes?: number; readonly freeBytes?: number };
  /** 0–1. */
  readonly utilization?: number;
  readonly temperatureC?: number;
  readonly uuid?: string;
  readonly driverVersion?: string;
  /** Usable providers for this device, most preferred first (CPU, the fallback, is not repeated here). */
  readonly executionProviders: readonly ExecutionProviderName[];
}

export interface HostSummary {
  readonly hostname: string;
  readonly platform: NodeJS.Platform;
  readonly arch: string;
  /** Whose cores and RAM `cpu.effectiveCores`, `memory` and the CPU device describe. */
  readonly scope: ResourceScope;
  readonly cpu: CpuInfo & {
    /** Cores to plan for in `scope` (see coresInScope). */
    readonly effectiveCores: number;
  };
  readonly memory: HostMemory;
  /** This process's own cgroup limits, whatever the scope. */
  readonly container: CgroupLimits;
  readonly devices: readonly DeviceInfo[];
  readonly executionProviders: readonly ExecutionProviderStatus[];
  /** Probes that failed in a way worth logging (nvidia-smi present but broken, …). */
  readonly problems: readonly string[];
}

export interface DeviceInputs {
  readonly platform: NodeJS.Platform;
  readonly cpu: CpuInfo;
  readonly memory: HostMemory;
  readonly cpuUtilization?: number;
  readonly nvidiaGpus: readonly NvidiaGpu[];
  readonly renderNodes: readonly RenderNode[];
  readonly providers: readonly ExecutionProviderStatus[];
}

/** Turns probe results into the device list: the CPU first, then accelerators. */
export function buildDevices(inputs: DeviceInputs): DeviceInfo[] {
  const usable = new Set(inputs.providers.filter((p) => p.usable).map((p) => p.name));
  const pick = (...names: ExecutionProviderName[]) => names.filter((name) => usable.has(name));
  const devices: DeviceInfo[] = [
    {
      id: "cpu",
      kind: "cpu",
      name: inputs.cpu.model,
      memory: { totalBytes: inputs.memory.totalBytes, freeBytes: inputs.memory.freeBytes },
      utilization: inputs.cpuUtilization,
      executionProviders: pick("cpu"),
    },
  ];
  for (const gpu of inputs.nvidiaGpus) {
    devices.push({
      id: `cuda:${gpu.index}`,
      kind: "cuda",
      name: gpu.name,
      memory: { totalBytes: gpu.memoryTotalBytes, freeBytes: gpu.memoryFreeBytes },
      utilization: gpu.utilization,
      temperatureC: gpu.temperatureC,
      uuid: gpu.uuid,
      driverVersion: gpu.driverVersion,
      executionProviders: pick("tensorrt", "cuda", "dml", "webgpu"),
    });
  }
  if (inputs.platform === "win32" && inputs.nvidiaGpus.length === 0 && usable.has("dml")) {
    devices.push({
      id: "dml:0",
      kind: "dml",
      name: "DirectML default adapter",
      memory: {},
      executionProviders: pick("dml", "webgpu"),
    });
  }
  if (inputs.platform === "darwin" && usable.has("coreml")) {
    // Apple silicon shares system memory between CPU, GPU and Neural Engine.
    devices.push({
      id: "coreml:0",
      kind: "coreml",
      name: `Core ML on ${inputs.cpu.model}`,
      memory: { totalBytes: inputs.memory.totalBytes, freeBytes: inputs.memory.freeBytes },
      executionProviders: pick("coreml", "webgpu"),
    });
  }
  if (inputs.platform === "linux" && usable.has("webgpu")) {
    // GPUs that nvidia-smi does not cover (AMD, Intel) are reachable through WebGPU over Vulkan.
    const others =
      inputs.nvidiaGpus.length > 0
        ? inputs.renderNodes.filter((n) => n.vendor !== "NVIDIA")
        : inputs.renderNodes;
    others.forEach((node, i) => {
      devices.push({
        id: `webgpu:${i}`,
        kind: "webgpu",
        name: `${node.vendor} GPU ${node.pciDeviceId} (${node.node})`,
        memory: {},
        executionProviders: ["webgpu"],
      });
    });
  }
  return devices;
}
