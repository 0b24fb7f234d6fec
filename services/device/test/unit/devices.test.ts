import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createHostDetector } from "../../src/detect/detect-host.js";
import { listRenderNodes } from "../../src/detect/drm-render-nodes.js";
import type { ExecutionProviderStatus } from "../../src/detect/execution-providers.js";
import { buildDevices, type DeviceInputs } from "../../src/detect/host-devices.js";
import { GIB, MIB } from "../../src/units/bytes.js";
import { gpuHost } from "./support/hosts.js";

const cpu = { model: "Apple M2 Max", logicalCores: 12 };
const memory = { totalBytes: 32 * GIB, freeBytes: 20 * GIB };
const usable = (...names: ExecutionProviderStatus["name"][]) =>
  names.map((name) => ({ name, bundled: true, usable: true, reason: "test" }));
const inputs = (overrides: Partial<DeviceInputs>): DeviceInputs => ({
  platform: "linux",
  cpu,
  memory,
  nvidiaGpus: [],
  renderNodes: [],
  providers: usable("cpu"),
  ...overrides,
});

describe("buildDevices", () => {
  it("lists the CPU first, then each NVIDIA GPU with its providers in preference order", () => {
    const host = gpuHost("nvidia-smi-4x-a100.csv");
    expect(host.devices.map((d) => d.id)).toEqual(["cpu", "cuda:0", "cuda:1", "cuda:2", "cuda:3"]);
    expect(host.devices[1]).toEqual({
      id: "cuda:0",
      kind: "cuda",
      name: "NVIDIA A100-SXM4-80GB",
      memory: { totalBytes: 81920 * MIB, freeBytes: 18739 * MIB },
      utilization: 0.97,
      temperatureC: 64,
      uuid: "GPU-3f1c2a7e-9b4d-4e21-8c6a-0d5e7f9a1b23",
      driverVersion: "535.104.12",
      executionProviders: ["tensorrt", "cuda"],
    });
    expect(host.devices[0]).toMatchObject({
      kind: "cpu",
      executionProviders: ["cpu"],
      memory: { totalBytes: 512 * GIB },
    });
  });

  it("adds a DirectML device on Windows and a Core ML device on macOS", () => {
    const windows = buildDevices(inputs({ platform: "win32", providers: usable("cpu", "dml", "webgpu") }));
    expect(windows.map((d) => [d.id, d.executionProviders])).toEqual([
      ["cpu", ["cpu"]],
      ["dml:0", ["dml", "webgpu"]],
    ]);
    const mac = buildDevices(inputs({ platform: "darwin", providers: usable("cpu", "coreml") }));
    expect(mac[1]).toMatchObject({
      id: "coreml:0",
      kind: "coreml",
      memory: { totalBytes: 32 * GIB },
      executionProviders: ["coreml"],
    });
  });

  it("reaches other Linux GPUs through WebGPU", () => {
    const renderNodes = [{ node: "renderD128", vendor: "AMD", pciVendorId: "0x1002", pciDeviceId: "0x744c" }];
    const devices = buildDevices(inputs({ renderNodes, providers: usable("cpu", "webgpu") }));
    expect(devices[1]).toEqual({
      id: "webgpu:0",
      kind: "webgpu",
      name: "AMD GPU 0x744c (renderD128)",
      memory: {},
      executionProviders: ["webgpu"],
    });
    // Without a usable WebGPU provider the render node is not a device.
    expect(buildDevices(inputs({ renderNodes }))).toHaveLength(1);
  });
});

describe("listRenderNodes", () => {
  it("reads render nodes and their PCI ids from a sysfs-shaped tree, ignoring card nodes", async () => {
    const root = mkdtempSync(join(tmpdir(), "dmesh-drm-"));
    try {
      const nodes: Array<[string, string, string]> = [
        ["renderD129", "0x8086", "0x56a0"],
        ["renderD128", "0x1002", "0x744c"],
        ["card0", "0x1002", "0x744c"],
      ];
      for (const [node, vendor, device] of nodes) {
        mkdirSync(join(root, node, "device"), { recursive: true });
        writeFileSync(join(root, node, "device", "vendor"), `${vendor}\n`);
        writeFileSync(join(root, node, "device", "device"), `${device}\n`);
      }
      expect(await listRenderNodes(root)).toEqual([
        { node: "renderD128", vendor: "AMD", pciVendorId: "0x1002", pciDeviceId: "0x744c" },
        { node: "renderD129", vendor: "Intel", pciVendorId: "0x8086", pciDeviceId: "0x56a0" },
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("finds none where the folder is absent", async () => {
    expect(await listRenderNodes(join(tmpdir(), "dmesh-no-such-drm"))).toEqual([]);
  });
});

describe("createHostDetector on this host", () => {
  it("finds a CPU device with the cpu provider, and measures CPU use between calls", async () => {
    const detector = createHostDetector();
    const first = await detector.detect();
    expect(first.devices[0]).toMatchObject({ id: "cpu", kind: "cpu", executionProviders: ["cpu"] });
    expect(first.devices[0]?.memory.totalBytes).toBeGreaterThan(0);
    expect(first.devices[0]?.utilization).toBeUndefined();
    expect(first.executionProviders.find((p) => p.name === "cpu")?.usable).toBe(true);
    expect(first.cpu.effectiveCores).toBeGreaterThanOrEqual(1);
    expect(first.cpu.effectiveCores).toBeLessThanOrEqual(first.cpu.logicalCores);
    expect(first.memory.freeBytes).toBeLessThanOrEqual(first.memory.totalBytes);
    // Every usable non-CPU provider must have found a device to run on.
    const deviceProviders = new Set(first.devices.flatMap((d) => d.executionProviders));
    for (const p of first.executionProviders.filter((s) => s.usable))
      expect(deviceProviders.has(p.name)).toBe(true);

    const second = await detector.detect();
    const utilization = second.devices[0]?.utilization;
    if (utilization !== undefined) {
      expect(utilization).toBeGreaterThanOrEqual(0);
      expect(utilization).toBeLessThanOrEqual(1);
    }
  });
});
