import { readFileSync } from "node:fs";
import type { ExecutionProviderStatus } from "../../../src/detect/execution-providers.js";
import { buildDevices, type HostSummary } from "../../../src/detect/host-devices.js";
import { parseNvidiaSmiCsv } from "../../../src/detect/nvidia-smi.js";
import { GIB } from "../../../src/units/bytes.js";

const status = (name: ExecutionProviderStatus["name"], usable: boolean): ExecutionProviderStatus => ({
  name,
  bundled: name === "cpu" || name === "webgpu",
  usable,
  reason: usable ? "test host" : "not on this test host",
});

/** A Linux GPU node as detection would report it, its GPUs read from a recorded nvidia-smi fixture. */
export function gpuHost(fixture: string, options: { tensorrt?: boolean; cores?: number } = {}): HostSummary {
  const cpu = { model: "AMD EPYC 7763 64-Core Processor", logicalCores: 128, speedMhz: 2450 };
  const memory = { totalBytes: 512 * GIB, freeBytes: 400 * GIB };
  const providers = [
    status("cpu", true),
    status("webgpu", false),
    status("cuda", true),
    status("tensorrt", options.tensorrt ?? true),
  ];
  const text = readFileSync(new URL(`../../fixtures/${fixture}`, import.meta.url), "utf8");
  return {
    hostname: "gpu-node-1",
    platform: "linux",
    arch: "x64",
    scope: "node",
    cpu: { ...cpu, effectiveCores: options.cores ?? 16 },
    memory,
    container: {},
    devices: buildDevices({
      platform: "linux",
      cpu,
      memory,
      nvidiaGpus: parseNvidiaSmiCsv(text),
      renderNodes: [],
      providers,
    }),
    executionProviders: providers,
    problems: [],
  };
}
