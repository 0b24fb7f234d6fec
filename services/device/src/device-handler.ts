import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type AcquireLeaseRequest,
  DeviceKind,
  DeviceSchema,
  type DeviceService,
  LeaseSchema,
  type RecommendSettingsRequest,
  ResourceScope,
} from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { InvalidArgumentError, NotFoundError, quote } from "@dmesh/runtime";
import type { HostDetector } from "./detect/detect-host.js";
import type { DeviceInfo, HostSummary } from "./detect/host-devices.js";
import {
  MAX_LEASE_TTL_SECONDS,
  type MemoryLease,
  type MemoryLeaseManager,
} from "./leases/memory-lease-manager.js";
import { recommendExecution } from "./recommend/recommend-execution.js";

const KINDS: Record<DeviceInfo["kind"], DeviceKind> = {
  cpu: DeviceKind.CPU,
  cuda: DeviceKind.CUDA,
  dml: DeviceKind.DML,
  coreml: DeviceKind.COREML,
  webgpu: DeviceKind.WEBGPU,
};

const SCOPES: Record<HostSummary["scope"], ResourceScope> = {
  container: ResourceScope.CONTAINER,
  node: ResourceScope.NODE,
};

/** DeviceService transport over host detection, recommendations and memory leases. */
export class DeviceHandler implements ServiceImpl<typeof DeviceService> {
  constructor(
    private readonly detector: HostDetector,
    private readonly leases: MemoryLeaseManager,
  ) {}

  async listDevices(_req: unknown, ctx: HandlerContext) {
    const host = await this.refresh(ctx.signal);
    return {
      host: {
        hostname: host.hostname,
        platform: host.platform,
        arch: host.arch,
        cpuModel: host.cpu.model,
        cpuCores: host.cpu.effectiveCores,
        memoryTotalBytes: BigInt(host.memory.totalBytes),
        memoryFreeBytes: BigInt(host.memory.freeBytes),
        onnxruntimeBackends: host.executionProviders.filter((p) => p.usable).map((p) => p.name),
        resourceScope: SCOPES[host.scope],
        containerLimits: {
          memoryLimitBytes: optional(host.container.memoryLimitBytes, BigInt),
          cpuLimitMillicores: optional(host.container.cpuLimit, (cores) => Math.round(cores * 1000)),
        },
      },
      devices: host.devices.map((d) => this.device(d, host)),
    };
  }

  async *watchDevices(req: { intervalMs: number }, ctx: HandlerContext) {
    const interval = req.intervalMs || 1000;
    if (interval < 100 || interval > 60_000)
      throw new InvalidArgumentError("interval_ms", "must be in [100, 60000]");
    while (!ctx.signal.aborted) {
      const host = await this.refresh(ctx.signal);
      yield { time: timestampNow(), devices: host.devices.map((d) => this.device(d, host)) };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, interval);
        ctx.signal.addEventListener(
          "abort",
          () => {
            clearTimeout(timer);
            resolve();
          },
          { once: true },
        );
      });
    }
  }

  async recommendSettings(req: RecommendSettingsRequest, ctx: HandlerContext) {
    if (req.width < 0 || req.height < 0) throw new InvalidArgumentError("width", "must be >= 0");
    const host = await this.refresh(ctx.signal);
    if (req.deviceId && !host.devices.some((d) => d.id === req.deviceId)) {
      throw new NotFoundError("device_id", `no device ${quote(req.deviceId)} on ${host.hostname}`);
    }
    const reserved = new Map<string, number>();
    for (const lease of this.leases.leases())
      reserved.set(lease.deviceId, (reserved.get(lease.deviceId) ?? 0) + lease.bytes);
    const rec = recommendExecution({
      host,
      estimate: {
        weightsBytes: Number(req.modelBytes),
        activationBytesPerImage: Number(req.activationBytesPerImage),
        precision: "float32",
      },
      ...(req.deviceId ? { deviceId: req.deviceId } : {}),
      reservedBytes: reserved,
    });
    return {
      deviceId: rec.deviceId,
      executionProviders: [...rec.providers],
      fp16: rec.precision === "float16",
      maxBatchSize: rec.maxBatch,
      intraOpThreads: rec.intraOpThreads,
      reason: rec.reasons.join("; "),
    };
  }

  acquireLease(req: AcquireLeaseRequest) {
    if (!req.deviceId) throw new InvalidArgumentError("device_id", "is required");
    if (!req.holder) throw new InvalidArgumentError("holder", "is required");
    if (req.memoryBytes <= 0n) throw new InvalidArgumentError("memory_bytes", "must be > 0");
    const ttl = req.ttlSeconds;
    if (ttl < 0 || ttl > MAX_LEASE_TTL_SECONDS) {
      throw new InvalidArgumentError(
        "ttl_seconds",
        `must be 1-${MAX_LEASE_TTL_SECONDS} (0 = the service's LEASE_TTL_SECONDS), got ${ttl}`,
      );
    }
    return this.leaseCall(() =>
      this.leases.acquire({
        deviceId: req.deviceId,
        holder: req.holder,
        bytes: Number(req.memoryBytes),
        ...(ttl > 0 ? { ttlMs: ttl * 1000 } : {}),
      }),
    );
  }

  renewLease(req: { leaseId: string }) {
    if (!req.leaseId) throw new InvalidArgumentError("lease_id", "is required");
    return this.leaseCall(() => this.leases.renew(req.leaseId));
  }

  releaseLease(req: { leaseId: string }) {
    if (!req.leaseId) throw new InvalidArgumentError("lease_id", "is required");
    if (!this.leases.release(req.leaseId))
      throw new NotFoundError("lease_id", `no lease ${quote(req.leaseId)}`);
    return {};
  }

  /**
   * Detects the host and keeps lease capacity equal to each device's total memory; run once at start, so
   * that a lease asked for before any listing finds its device.
   */
  async refresh(signal?: AbortSignal): Promise<HostSummary> {
    const host = await this.detector.detect(signal);
    for (const d of host.devices) {
      if (d.memory.totalBytes !== undefined) this.leases.setCapacity(d.id, d.memory.totalBytes);
    }
    return host;
  }

  private device(d: DeviceInfo, host: HostSummary) {
    const leased = this.leases.leases(d.id).reduce((n, l) => n + l.bytes, 0);
    return create(DeviceSchema, {
      id: d.id,
      kind: KINDS[d.kind],
      name: d.name,
      memoryTotalBytes: BigInt(d.memory.totalBytes ?? 0),
      memoryFreeBytes: BigInt(d.memory.freeBytes ?? 0),
      utilizationPercent: d.utilization === undefined ? -1 : d.utilization * 100,
      temperatureCelsius: d.temperatureC ?? -1,
      executionProviders: [...d.executionProviders, "cpu"].filter((p, i, a) => a.indexOf(p) === i),
      cores: d.kind === "cpu" ? host.cpu.effectiveCores : 0,
      memoryLeasedBytes: BigInt(leased),
    });
  }

  private leaseCall(fn: () => MemoryLease) {
    const lease = fn();
    return {
      lease: create(LeaseSchema, {
        id: lease.id,
        deviceId: lease.deviceId,
        memoryBytes: BigInt(lease.bytes),
        holder: lease.holder,
        expiresAt: timestampFromMs(lease.expiresAt),
      }),
    };
  }
}

function optional<T, R>(value: T | undefined, map: (value: T) => R): R | undefined {
  return value === undefined ? undefined : map(value);
}
