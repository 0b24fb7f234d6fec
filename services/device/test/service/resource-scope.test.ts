import os from "node:os";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { DeviceService, ResourceScope } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { createGrpcTransport, createLogger, loadConfig, type RunningService } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deviceSettings } from "../../src/config.js";
import { startDevice } from "../../src/server.js";

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
// The recorded 24 GiB node and a real cgroup v1 pod limited to 256 MiB and 0.5 CPU (test/fixtures/README.md).
const NODE_TOTAL = 24684092n * 1024n;
const NODE_AVAILABLE = 23526340n * 1024n;
const POD_LIMIT = 256n * 1024n * 1024n;
const POD_FREE = POD_LIMIT - (176267264n - 32n * 1024n * 1024n);
const GIB = 1024n ** 3n;

describe.each([
  ["node", ResourceScope.NODE, NODE_TOTAL, NODE_AVAILABLE, os.cpus().length],
  ["container", ResourceScope.CONTAINER, POD_LIMIT, POD_FREE, 1],
] as const)("DeviceService in %s scope over gRPC", (scope, wireScope, total, free, cores) => {
  let service: RunningService;
  let transport: ReturnType<typeof createGrpcTransport>;
  let client: ReturnType<typeof createClient<typeof DeviceService>>;

  beforeAll(async () => {
    const env = {
      PORT: "0",
      RESOURCE_SCOPE: scope,
      PROC_ROOT: fixture("proc"),
      CGROUP_ROOT: fixture("cgroup-v1-pod"),
      NVIDIA_SMI: "nvidia-smi-not-installed",
    };
    service = await startDevice(loadConfig(deviceSettings, env, []), createLogger("device", "silent"));
    transport = createGrpcTransport({ address: service.address });
    client = createClient(DeviceService, transport);
  });
  afterAll(async () => {
    transport.close();
    await service.close();
  });

  it("reports RAM and cores in its scope, and its own container's limits beside them", async () => {
    const { host, devices } = await client.listDevices({});
    expect(host?.resourceScope).toBe(wireScope);
    expect(host?.memoryTotalBytes).toBe(total);
    expect(host?.memoryFreeBytes).toBe(free);
    expect(host?.cpuCores).toBe(cores);
    expect(host?.containerLimits?.memoryLimitBytes).toBe(POD_LIMIT);
    expect(host?.containerLimits?.cpuLimitMillicores).toBe(500);
    const cpu = devices.find((d) => d.id === "cpu");
    expect([cpu?.memoryTotalBytes, cpu?.memoryFreeBytes, cpu?.cores]).toEqual([total, free, cores]);
  });

  it("leases against the scope's RAM: 1 GiB fits the node, not the pod", async () => {
    const call = client.acquireLease({ deviceId: "cpu", memoryBytes: GIB, holder: "inference-0" });
    if (scope === "node") {
      const { lease } = await call;
      expect(lease?.memoryBytes).toBe(GIB);
      await client.releaseLease({ leaseId: lease?.id ?? "" });
    } else {
      const err = ConnectError.from(await call.catch((e: unknown) => e));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toBe("cpu: 1.0 GiB requested but only 256.0 MiB free");
    }
  });

  it("recommends against the scope's free RAM: a 512 MiB model runs on the node, not in the pod", async () => {
    const call = client.recommendSettings({
      modelBytes: 512n * 1024n * 1024n,
      activationBytesPerImage: 64n * 1024n * 1024n,
      width: 512,
      height: 512,
    });
    if (scope === "node") {
      const rec = await call;
      expect(rec).toMatchObject({ deviceId: "cpu", maxBatchSize: 8, intraOpThreads: cores });
    } else {
      const err = ConnectError.from(await call.catch((e: unknown) => e));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toMatch(/^cpu: 576\.0 MiB needed for one image but only [\d.]+ MiB free$/);
    }
  });
});

describe("RESOURCE_SCOPE", () => {
  it("defaults to container (a laptop's npm start) and refuses anything but node or container", () => {
    expect(loadConfig(deviceSettings, {}, []).resourceScope).toBe("container");
    expect(() => loadConfig(deviceSettings, { RESOURCE_SCOPE: "pod" }, [])).toThrow(
      'RESOURCE_SCOPE: must be one of container, node (got "pod")',
    );
  });
});
