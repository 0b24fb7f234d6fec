import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { DeviceKind, DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { createGrpcTransport, createLogger, loadConfig, type RunningService } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceSettings } from "../../src/config.js";
import { MAX_LEASE_TTL_SECONDS } from "../../src/leases/memory-lease-manager.js";
import { startDevice } from "../../src/server.js";

function timestampMs(t: { seconds: bigint; nanos: number } | undefined): number {
  return Number(t?.seconds ?? 0n) * 1000 + (t?.nanos ?? 0) / 1e6;
}

let service: RunningService;
let transport: ReturnType<typeof createGrpcTransport>;
let client: ReturnType<typeof createClient<typeof DeviceService>>;

beforeAll(async () => {
  // No nvidia-smi on this machine: the command is absent, which the service must treat as "no NVIDIA GPU".
  const config = loadConfig(deviceSettings, { PORT: "0", NVIDIA_SMI: "nvidia-smi-not-installed" }, []);
  service = await startDevice(config, createLogger("device", "silent"));
  transport = createGrpcTransport({ address: service.address });
  client = createClient(DeviceService, transport);
});
afterAll(async () => {
  transport.close();
  await service.close();
});

describe("DeviceService over gRPC", () => {
  it("lists this host's CPU and memory, read for real", async () => {
    const res = await client.listDevices({});
    const cpu = res.devices.find((d) => d.id === "cpu");
    expect(cpu?.kind).toBe(DeviceKind.CPU);
    expect(cpu?.executionProviders).toContain("cpu");
    expect(res.host?.cpuCores).toBeGreaterThan(0);
    expect(res.host?.memoryTotalBytes).toBeGreaterThan(0n);
    expect(res.host?.onnxruntimeBackends).toContain("cpu");
  });

  it("streams telemetry at the asked interval until cancelled", async () => {
    const abort = new AbortController();
    const times: number[] = [];
    await (async () => {
      for await (const snapshot of client.watchDevices({ intervalMs: 100 }, { signal: abort.signal })) {
        times.push(Number(snapshot.time?.seconds ?? 0) * 1000 + (snapshot.time?.nanos ?? 0) / 1e6);
        if (times.length === 3) abort.abort();
      }
    })().catch((e: unknown) => {
      if (ConnectError.from(e).code !== Code.Canceled) throw e;
    });
    expect(times).toHaveLength(3);
    expect((times[2] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(150);
  });

  it("recommends CPU settings and a batch that fits", async () => {
    const res = await client.recommendSettings({
      modelBytes: 10_000_000n,
      activationBytesPerImage: 1_000_000n,
      width: 64,
      height: 64,
    });
    expect(res.deviceId).toBe("cpu");
    expect(res.executionProviders.at(-1)).toBe("cpu");
    expect(res.maxBatchSize).toBeGreaterThan(0);
  });

  it("leases memory, refuses oversubscription saying how much is free, and releases", async () => {
    const { devices } = await client.listDevices({});
    const total = devices.find((d) => d.id === "cpu")?.memoryTotalBytes ?? 0n;
    const { lease } = await client.acquireLease({
      deviceId: "cpu",
      memoryBytes: total / 2n,
      holder: "worker-a",
    });
    expect(lease?.id).toBeTruthy();
    const err = ConnectError.from(
      await client
        .acquireLease({ deviceId: "cpu", memoryBytes: total, holder: "worker-b" })
        .catch((e: unknown) => e),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/free/);
    const renewed = await client.renewLease({ leaseId: lease?.id ?? "" });
    expect(renewed.lease?.id).toBe(lease?.id);
    await client.releaseLease({ leaseId: lease?.id ?? "" });
    const gone = ConnectError.from(
      await client.releaseLease({ leaseId: lease?.id ?? "" }).catch((e: unknown) => e),
    );
    expect(gone.code).toBe(Code.NotFound);
  });

  it("gives a lease that asks for no TTL the configured LEASE_TTL_SECONDS, and refuses one above the lease manager's cap by its proto field", async () => {
    const config = loadConfig(
      deviceSettings,
      { PORT: "0", NVIDIA_SMI: "nvidia-smi-not-installed", LEASE_TTL_SECONDS: "7" },
      [],
    );
    const custom = await startDevice(config, createLogger("device", "silent"));
    const customTransport = createGrpcTransport({ address: custom.address });
    try {
      // No ListDevices first: the service knows its devices' capacity from its start.
      const devices = createClient(DeviceService, customTransport);
      const request = { deviceId: "cpu", memoryBytes: 1024n, holder: "worker-ttl" };
      const before = Date.now();
      const { lease } = await devices.acquireLease(request);
      const lifetimeMs = timestampMs(lease?.expiresAt) - before;
      expect(lifetimeMs).toBeGreaterThan(6_000);
      expect(lifetimeMs).toBeLessThanOrEqual(7_000 + (Date.now() - before));

      const longest = await devices.acquireLease({ ...request, ttlSeconds: MAX_LEASE_TTL_SECONDS });
      expect(timestampMs(longest.lease?.expiresAt) - before).toBeGreaterThan(
        (MAX_LEASE_TTL_SECONDS - 1) * 1000,
      );
      for (const ttlSeconds of [MAX_LEASE_TTL_SECONDS + 1, 3600, -1]) {
        const err = ConnectError.from(
          await devices.acquireLease({ ...request, ttlSeconds }).catch((e: unknown) => e),
        );
        expect(err.code).toBe(Code.InvalidArgument);
        expect(err.metadata.get("dmesh-field")).toBe("ttl_seconds");
        expect(err.rawMessage).toContain(`must be 1-${MAX_LEASE_TTL_SECONDS}`);
      }
    } finally {
      customTransport.close();
      await custom.close();
    }
  });

  it("refuses a LEASE_TTL_SECONDS that the lease manager would refuse on every lease", () => {
    const env = { NVIDIA_SMI: "nvidia-smi-not-installed" };
    expect(
      loadConfig(deviceSettings, { ...env, LEASE_TTL_SECONDS: String(MAX_LEASE_TTL_SECONDS) }, [])
        .leaseTtlSeconds,
    ).toBe(MAX_LEASE_TTL_SECONDS);
    expect(() =>
      loadConfig(deviceSettings, { ...env, LEASE_TTL_SECONDS: String(MAX_LEASE_TTL_SECONDS + 1) }, []),
    ).toThrow(/LEASE_TTL_SECONDS/);
  });

  it("names the field of a bad request", async () => {
    const err = ConnectError.from(
      await client
        .watchDevices({ intervalMs: 5 })
        [Symbol.asyncIterator]()
        .next()
        .catch((e: unknown) => e),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.metadata.get("dmesh-field")).toBe("interval_ms");
  });
});
