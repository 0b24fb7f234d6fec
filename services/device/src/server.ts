import {
  type ConfigOf,
  type Logger,
  listenOptions,
  type RunningService,
  startGrpcService,
} from "@dmesh/runtime";
import type { deviceSettings } from "./config.js";
import { createHostDetector } from "./detect/detect-host.js";
import { DeviceHandler } from "./device-handler.js";
import { gaugeDevicesFrom } from "./device-metrics.js";
import { createMemoryLeaseManager } from "./leases/memory-lease-manager.js";
import { routes } from "./routes.js";

export type DeviceConfig = ConfigOf<typeof deviceSettings>;

/** Starts the device service; ready after the first successful detection of the host. */
export async function startDevice(config: DeviceConfig, logger: Logger): Promise<RunningService> {
  const detector = createHostDetector({
    scope: config.resourceScope,
    nvidiaSmiCommand: config.nvidiaSmi,
    procRoot: config.procRoot,
    cgroupRoot: config.cgroupRoot,
  });
  const leases = createMemoryLeaseManager({
    defaultTtlMs: config.leaseTtlSeconds * 1000,
    onExpire: (lease) =>
      logger.warn(
        { lease: lease.id, holder: lease.holder, device: lease.deviceId },
        "lease expired unrenewed",
      ),
  });
  const handler = new DeviceHandler(detector, leases);
  gaugeDevicesFrom(detector, leases);
  const service = await startGrpcService({
    name: "device",
    ...listenOptions(config),
    logger,
    registrations: routes(handler),
  });
  const host = await handler.refresh().catch(async (err: unknown) => {
    await service.close();
    throw err;
  });
  for (const problem of host.problems) logger.warn({ problem }, "device detection problem");
  logger.info(
    {
      scope: host.scope,
      memoryTotalBytes: host.memory.totalBytes,
      containerMemoryLimitBytes: host.container.memoryLimitBytes,
      devices: host.devices.map((d) => `${d.id} ${d.name}`),
      providers: host.executionProviders.filter((p) => p.usable).map((p) => p.name),
    },
    "host detected",
  );
  service.health.setReady(true);
  return service;
}
