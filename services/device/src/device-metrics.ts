import { gauge } from "@dmesh/runtime";
import type { HostDetector } from "./detect/detect-host.js";
import type { HostSummary } from "./detect/host-devices.js";
import type { MemoryLeaseManager } from "./leases/memory-lease-manager.js";

/**
 * The device service's metrics: each device's memory and utilization as the host reports them, read when
 * scraped (one detection serves every gauge of a scrape). Labels: the device's id ("cpu", "cuda:0": fixed by
 * the hardware) and kind.
 */

/** A scrape reads every gauge at once: they share one detection this young. */
const REUSE_MS = 1000;

let sources: { detector: HostDetector; leases: MemoryLeaseManager } | undefined;
let latest: { at: number; host: Promise<HostSummary | undefined> } | undefined;

function host(): Promise<HostSummary | undefined> {
  if (!sources) return Promise.resolve(undefined);
  const now = performance.now();
  if (!latest || now - latest.at > REUSE_MS) {
    latest = { at: now, host: sources.detector.detect().catch(() => undefined) };
  }
  return latest.host;
}

const labelNames = ["device", "kind"] as const;

function deviceGauge(
  name: string,
  help: string,
  value: (d: HostSummary["devices"][number]) => number | undefined,
) {
  gauge({
    name,
    help,
    labelNames,
    async collect() {
      this.reset();
      for (const d of (await host())?.devices ?? []) {
        const v = value(d);
        if (v !== undefined) this.set({ device: d.id, kind: d.kind }, v);
      }
    },
  });
}

deviceGauge("dmesh_device_memory_total_bytes", "Memory of each device.", (d) => d.memory.totalBytes);
deviceGauge("dmesh_device_memory_free_bytes", "Memory of each device not in use.", (d) => d.memory.freeBytes);
deviceGauge("dmesh_device_memory_leased_bytes", "Memory of each device promised to workers by leases.", (d) =>
  sources?.leases.leases(d.id).reduce((n, l) => n + l.bytes, 0),
);
deviceGauge(
  "dmesh_device_utilization_ratio",
  "Busy share of each device (0-1) since the previous reading.",
  (d) => d.utilization,
);

/** Where the gauges read at each scrape. */
export function gaugeDevicesFrom(detector: HostDetector, leases: MemoryLeaseManager): void {
  sources = { detector, leases };
}
