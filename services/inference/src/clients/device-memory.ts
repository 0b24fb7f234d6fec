import { createClient } from "@connectrpc/connect";
import { type Device, DeviceKind, DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { type ClientTls, createGrpcTransport } from "@dmesh/runtime";
import type { Logger } from "@dmesh/runtime/logger";

/** One device's memory as the device service on this host reports it. */
export interface DeviceMemory {
  readonly deviceId: string;
  readonly totalBytes: bigint;
  readonly freeBytes: bigint;
  readonly leasedBytes: bigint;
}

export interface DeviceMemoryReader {
  /** The latest reading (at most `maxAgeMs` old), or undefined while the device service does not answer. */
  read(): Promise<DeviceMemory | undefined>;
  close(): void;
}

/**
 * Reads the memory of the device this process runs its models on from the device service on its host, so that
 * what this replica reports (GetQueue) lets an orchestrator size its work by it. Readings are kept for
 * `maxAgeMs` and concurrent readers share one call: every orchestrator's health check asks.
 */
export function createDeviceMemoryReader(
  deviceUrl: string,
  providers: readonly string[],
  logger: Logger,
  maxAgeMs = 1000,
  tls?: ClientTls,
): DeviceMemoryReader {
  const transport = createGrpcTransport({ address: deviceUrl, ...(tls ? { tls } : {}) });
  const client = createClient(DeviceService, transport);
  let last: { at: number; memory: DeviceMemory | undefined } | undefined;
  let pending: Promise<DeviceMemory | undefined> | undefined;
  let failing = false;
  const fetch = async (): Promise<DeviceMemory | undefined> => {
    try {
      const { devices } = await client.listDevices({}, { timeoutMs: 1000 });
      const device = deviceOf(devices, providers[0] ?? "cpu");
      failing = false;
      return (
        device && {
          deviceId: device.id,
          totalBytes: device.memoryTotalBytes,
          freeBytes: device.memoryFreeBytes,
          leasedBytes: device.memoryLeasedBytes,
        }
      );
    } catch (err) {
      if (!failing) logger.warn({ from: deviceUrl, err: String(err) }, "device memory unavailable");
      failing = true;
      return undefined;
    }
  };
  return {
    async read() {
      if (last && performance.now() - last.at < maxAgeMs) return last.memory;
      pending ??= fetch().then((memory) => {
        last = { at: performance.now(), memory };
        pending = undefined;
        return memory;
      });
      return pending;
    },
    close: () => transport.close(),
  };
}

/**
 * The device a provider chain runs on: the CPU for "cpu", else the first accelerator offering the chain's
 * first provider (onnxruntime's device 0).
 */
export function deviceOf(devices: readonly Device[], provider: string): Device | undefined {
  const cpu = devices.find((d) => d.kind === DeviceKind.CPU);
  if (provider === "cpu") return cpu;
  return devices.find((d) => d.kind !== DeviceKind.CPU && d.executionProviders.includes(provider)) ?? cpu;
}
