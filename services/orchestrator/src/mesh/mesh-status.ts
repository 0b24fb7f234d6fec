import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import type { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import type { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import type { InstructorStatusSchema } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { HealthCheckResponse_ServingStatus as Serving } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import type { Replica, ReplicaPool } from "../clients/replica-pool.js";

export type InstructorStatusInit = MessageInitShape<typeof InstructorStatusSchema>;

/** How long one replica's probe may take: a status page waits for the slowest. */
const PROBE_TIMEOUT_MS = 2000;

/**
 * Asks every replica of every domain, at once, how it is: health and latency, then what its domain adds (an
 * inference replica's queue, warm models and device memory; a device replica's memory summed over its
 * devices). A replica that does not answer is listed as UNREACHABLE with the error, never left out.
 */
export function probeInstructors(
  pools: {
    inference: ReplicaPool<typeof InferenceService>;
    postprocess: ReplicaPool<typeof PostprocessService>;
    device: ReplicaPool<typeof DeviceService> | undefined;
  },
  signal: AbortSignal,
): Promise<InstructorStatusInit[]> {
  const opts = { signal, timeoutMs: PROBE_TIMEOUT_MS };
  return Promise.all([
    ...pools.inference.all().map((r) =>
      probe("inference", r, opts, async (s) => {
        const q = await r.client.getQueue({}, opts);
        s.queueRunning = q.running;
        s.queueQueued = q.queued;
        s.warmModels = q.loadedModels;
        s.deviceId = q.deviceMemory?.deviceId;
        s.deviceMemoryFreeBytes = q.deviceMemory?.freeBytes;
        s.deviceMemoryTotalBytes = q.deviceMemory?.totalBytes;
        s.deviceMemoryLeasedBytes = q.deviceMemory?.leasedBytes;
      }),
    ),
    ...pools.postprocess.all().map((r) => probe("postprocess", r, opts, async () => {})),
    ...(pools.device?.all() ?? []).map((r) =>
      probe("device", r, opts, async (s) => {
        const { devices } = await r.client.listDevices({}, opts);
        s.deviceMemoryFreeBytes = devices.reduce((n, d) => n + d.memoryFreeBytes, 0n);
        s.deviceMemoryTotalBytes = devices.reduce((n, d) => n + d.memoryTotalBytes, 0n);
        s.deviceMemoryLeasedBytes = devices.reduce((n, d) => n + d.memoryLeasedBytes, 0n);
      }),
    ),
  ]);
}

async function probe(
  domain: string,
  replica: Pick<Replica<DescService>, "address" | "health">,
  opts: { signal: AbortSignal; timeoutMs: number },
  extra: (s: InstructorStatusInit) => Promise<void>,
): Promise<InstructorStatusInit> {
  const status: InstructorStatusInit = { domain, address: replica.address };
  const started = performance.now();
  try {
    const res = await replica.health.check({ service: "" }, opts);
    status.health = Serving[res.status];
    status.latencyMs = performance.now() - started;
    await extra(status);
  } catch (err) {
    status.health = status.health || "UNREACHABLE";
    status.error = (err as Error).message;
  }
  return status;
}
