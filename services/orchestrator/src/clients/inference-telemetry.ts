import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import type { Telemetry } from "./replica-pool.js";

/** What an inference replica reports through GetQueue: its queue, warm models, UNet batch and device memory. */
export const inferenceTelemetry: Telemetry<typeof InferenceService> = async (replica, timeoutMs) => {
  const q = await replica.client.getQueue({}, { timeoutMs });
  const m = q.deviceMemory;
  return {
    load: q.running + q.queued,
    warm: q.loadedModels,
    maxUnetBatch: q.maxUnetBatch,
    maxConcurrent: q.maxConcurrent,
    memory: m && {
      deviceId: m.deviceId,
      totalBytes: Number(m.totalBytes),
      freeBytes: Number(m.freeBytes),
      leasedBytes: Number(m.leasedBytes),
    },
  };
};
