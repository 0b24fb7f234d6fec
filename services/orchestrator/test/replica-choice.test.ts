import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { inferenceSettings, startInference } from "@dmesh/inference";
import { createLogger, loadConfig, type RunningService } from "@dmesh/runtime";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReplicaPool } from "../src/clients/replica-pool.js";

const logger = createLogger("test", "silent");
let dir: string;
let warm: RunningService;
let cold: RunningService;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-replica-choice-"));
  await ensureTinyModel(join(dir, "tiny-sdxl"));
  const start = (preload: boolean) =>
    startInference(
      loadConfig(
        inferenceSettings,
        { PORT: "0", MODELS_DIR: dir, PRELOAD_DEFAULT_MODEL: String(preload) },
        [],
      ),
      logger,
    );
  warm = await start(true);
  cold = await start(false);
  const deadline = Date.now() + 30_000;
  while (!warm.health.ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
});
afterAll(async () => {
  await Promise.all([warm?.close(), cold?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe("choosing an inference replica from what replicas report", () => {
  it("prefers the replica with the model warm, unless it has a whole request more to do", async () => {
    // Two real inference services; the pool learns their queues and warm models through GetQueue.
    const pool = new ReplicaPool(
      "inference",
      InferenceService,
      [cold.address, warm.address],
      logger,
      1 << 20,
      async (r, timeoutMs) => {
        const q = await r.client.getQueue({}, { timeoutMs });
        return { load: q.running + q.queued, warm: q.loadedModels };
      },
    );
    try {
      await pool.checkHealth();
      const byAddress = new Map(pool.all().map((r) => [r.address, r]));
      expect(byAddress.get(warm.address)?.warm).toEqual(["tiny-sdxl"]);
      expect(byAddress.get(cold.address)?.warm).toEqual([]);
      expect(pool.pick(new Set(), "tiny-sdxl").address).toBe(warm.address);
      // Without a model preference the equally idle replicas tie and the first listed wins.
      expect(pool.pick().address).toBe(cold.address);
      const warmReplica = byAddress.get(warm.address);
      if (warmReplica) warmReplica.inFlight = 1;
      expect(pool.pick(new Set(), "tiny-sdxl").address).toBe(cold.address);
    } finally {
      pool.close();
    }
  });
});
