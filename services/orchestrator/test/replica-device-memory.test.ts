import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { deviceSettings, startDevice } from "@dmesh/device";
import { inferenceSettings, startInference } from "@dmesh/inference";
import { createGrpcTransport, createLogger, loadConfig, type RunningService } from "@dmesh/runtime";
import { estimateActivationBytes } from "@dmesh/spec";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leaseAllBut } from "../../../test/support/device-leases.js";
import { inferenceTelemetry } from "../src/clients/inference-telemetry.js";
import { ReplicaPool } from "../src/clients/replica-pool.js";
import { usableBytes } from "../src/mesh/device-memory.js";

// Two real inference services, each with a real device service of its own as on two hosts. Device memory is
// set aside the way workers do it, with memory leases on the device service, which the replica then reports.
const logger = createLogger("test", "silent");
const PER_IMAGE = estimateActivationBytes(256, 256);
let dir: string;
const services: RunningService[] = [];
let hosts: { inference: RunningService; device: ReturnType<typeof deviceClient> }[] = [];

function deviceClient(address: string) {
  const transport = createGrpcTransport({ address });
  return Object.assign(createClient(DeviceService, transport), { close: () => transport.close() });
}

const leaveOnly = (device: ReturnType<typeof deviceClient>, leftBytes: number) =>
  leaseAllBut(device, leftBytes, "replica-device-memory.test");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-replica-memory-"));
  await ensureTinyModel(join(dir, "tiny-sdxl"));
  for (let i = 0; i < 2; i++) {
    const device = await startDevice(loadConfig(deviceSettings, { PORT: "0" }, []), logger);
    services.push(device);
    const inference = await startInference(
      loadConfig(
        inferenceSettings,
        {
          PORT: "0",
          MODELS_DIR: dir,
          PRELOAD_DEFAULT_MODEL: "false",
          DEVICE_URL: device.address,
          MAX_UNET_BATCH: "3",
          MAX_CONCURRENT_GENERATIONS: "3",
        },
        [],
      ),
      logger,
    );
    services.push(inference);
    hosts.push({ inference, device: deviceClient(device.address) });
  }
});
afterAll(async () => {
  for (const host of hosts) host.device.close();
  hosts = [];
  await Promise.all(services.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** A pool over both hosts' inference replicas, reading their device memory at each health check. */
function replicaPool(...replicas: { inference: RunningService }[]) {
  const addresses = replicas.map((r) => r.inference.address);
  return new ReplicaPool("inference", InferenceService, addresses, logger, 1 << 20, inferenceTelemetry);
}

// Device readings are cached for a second by the replica; a health check after that sees a new lease.
const READING_MAX_AGE_MS = 1000;
const afterReadingExpires = () => new Promise((r) => setTimeout(r, READING_MAX_AGE_MS + 100));

describe("inference replicas' device memory in the choice of a replica", () => {
  it("reports each replica's device memory and UNet batch, and skips a replica without room", async () => {
    const [a, b] = hosts;
    if (!a || !b) throw new Error("two hosts expected");
    const pool = replicaPool(a, b);
    const leases: { device: ReturnType<typeof deviceClient>; id: string }[] = [];
    try {
      await pool.checkHealth();
      const [ra, rb] = pool.all();
      for (const r of [ra, rb]) {
        expect(r?.memory?.deviceId).toBe("cpu");
        expect(r?.memory?.totalBytes).toBeGreaterThan(0);
        expect(r?.memory?.freeBytes).toBeGreaterThan(0);
        expect(r?.maxUnetBatch).toBe(3);
        expect(r?.maxConcurrent).toBe(3);
      }
      // Both idle, both with room: the first listed.
      expect(pool.pick(new Set(), "", { bytesPerImage: PER_IMAGE }).address).toBe(a.inference.address);

      // A's device keeps half an image's memory free of leases: B is chosen while it has room.
      leases.push({ device: a.device, id: await leaveOnly(a.device, PER_IMAGE / 2) });
      await afterReadingExpires();
      await pool.checkHealth();
      expect(ra?.memory && usableBytes(ra.memory)).toBeLessThan(PER_IMAGE);
      expect(pool.pick(new Set(), "", { bytesPerImage: PER_IMAGE }).address).toBe(b.inference.address);
      // Work that needs less still goes to the first listed, and so does work of unknown size.
      expect(pool.pick(new Set(), "", { bytesPerImage: PER_IMAGE / 4 }).address).toBe(a.inference.address);
      expect(pool.pick().address).toBe(a.inference.address);

      // With room on neither, the estimate being rough, the least loaded is still tried.
      leases.push({ device: b.device, id: await leaveOnly(b.device, PER_IMAGE / 2) });
      await afterReadingExpires();
      await pool.checkHealth();
      expect(pool.pick(new Set(), "", { bytesPerImage: PER_IMAGE }).address).toBe(a.inference.address);
    } finally {
      for (const lease of leases) await lease.device.releaseLease({ leaseId: lease.id });
      pool.close();
    }
  });

  it("sizes a group by the images its device's free memory holds, capped by MAX_UNET_BATCH", async () => {
    const [a, b] = hosts;
    if (!a || !b) throw new Error("two hosts expected");
    const pool = replicaPool(a, b);
    const lease = await leaveOnly(a.device, Math.round(PER_IMAGE * 2.5));
    try {
      await afterReadingExpires();
      await pool.checkHealth();
      // A holds two images; B has room for many more than its MAX_UNET_BATCH of 3, or the group cap.
      expect(pool.placeGroup(PER_IMAGE, "", 8)).toEqual({
        address: a.inference.address,
        images: 2,
        requests: 2,
      });
      pool.pin("first", a.inference.address);
      pool.pin("second", a.inference.address);
      expect(pool.placeGroup(PER_IMAGE, "", 8)).toEqual({
        address: b.inference.address,
        images: 3,
        requests: 3,
      });
      expect(pool.placeGroup(PER_IMAGE, "", 2)).toEqual({
        address: b.inference.address,
        images: 2,
        requests: 2,
      });
      // A placement is used once, by the request it was made for, and counts as work until then.
      expect(pool.pick(new Set(), "", { requestId: "second" }).address).toBe(a.inference.address);
      expect(pool.pick(new Set(), "", { requestId: "second" }).address).toBe(b.inference.address);
      pool.unpin("first");
      expect(pool.all().map((r) => r.pinned)).toEqual([0, 0]);
      expect(pool.placeGroup(PER_IMAGE, "", 8).address).toBe(a.inference.address);
    } finally {
      await a.device.releaseLease({ leaseId: lease });
      pool.close();
    }
  });
});
