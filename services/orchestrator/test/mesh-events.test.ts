import { create } from "@bufbuild/protobuf";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { BatchSchema, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { type MeshEvent, MeshEventKind } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import {
  SessionEventKind,
  SessionEventSchema,
  SessionSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { createLogger } from "@dmesh/runtime";
import { afterEach, describe, expect, it } from "vitest";
import { ReplicaPool } from "../src/clients/replica-pool.js";
import { LifecycleEvents } from "../src/mesh-events/lifecycle-events.js";
import { MeshEventHub } from "../src/mesh-events/mesh-event-hub.js";
import { ReplicaWatch } from "../src/mesh-events/replica-watch.js";

const logger = createLogger("test", "silent");
const GIB = 2 ** 30;
const pools: ReplicaPool<typeof InferenceService>[] = [];
afterEach(() => {
  for (const p of pools.splice(0)) p.close();
});

/** Collects what a watcher of `kinds` gets until `count` events arrived (bounded by a second). */
async function collect(
  hub: MeshEventHub,
  kinds: MeshEventKind[],
  act: () => void,
  count: number,
  scope: { tenant?: string } = {},
): Promise<MeshEvent[]> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 1000);
  const got: MeshEvent[] = [];
  const reading = (async () => {
    for await (const e of hub.watch(new Set(kinds), scope, stop.signal)) {
      got.push(e);
      if (got.length >= count) break;
    }
  })();
  // The watcher is registered once its generator starts; let it.
  await new Promise((r) => setImmediate(r));
  act();
  await reading;
  clearTimeout(timer);
  return got;
}

function inferencePool(addresses: string[]): ReplicaPool<typeof InferenceService> {
  const pool = new ReplicaPool("inference", InferenceService, addresses, logger, 1 << 20);
  pools.push(pool);
  return pool;
}

describe("replica watch", () => {
  it("tells a replica down once, and up again once, with why it went down", async () => {
    const hub = new MeshEventHub();
    const pool = inferencePool(["10.0.0.1:1", "10.0.0.2:1"]);
    const watch = new ReplicaWatch([pool], hub);
    watch.observe();
    const [a] = pool.all();
    const events = await collect(
      hub,
      [MeshEventKind.REPLICA_DOWN, MeshEventKind.REPLICA_UP],
      () => {
        if (!a) return;
        a.healthy = false;
        a.lastError = "connect ECONNREFUSED";
        watch.observe();
        watch.observe(); // unchanged: nothing new
        a.healthy = true;
        a.lastError = "";
        watch.observe();
      },
      // The snapshot's two, then down and up.
      4,
    );
    expect(events.map((e) => MeshEventKind[e.kind])).toEqual([
      "REPLICA_UP",
      "REPLICA_UP",
      "REPLICA_DOWN",
      "REPLICA_UP",
    ]);
    const down = events[2];
    expect(down?.detail.case === "replica" && down.detail.value).toMatchObject({
      domain: "inference",
      address: "10.0.0.1:1",
      reason: "connect ECONNREFUSED",
    });
    expect(down?.time?.seconds).toBeGreaterThan(0n);
  });

  it("tells models loaded and unloaded, and not while a replica cannot say", async () => {
    const hub = new MeshEventHub();
    const pool = inferencePool(["10.0.0.1:1"]);
    const watch = new ReplicaWatch([pool], hub);
    const [r] = pool.all();
    if (!r) throw new Error("no replica");
    const events = await collect(
      hub,
      [MeshEventKind.MODEL_LOADED, MeshEventKind.MODEL_UNLOADED],
      () => {
        r.warm = ["sdxl"];
        watch.observe();
        r.warm = ["sdxl", "refiner"];
        watch.observe();
        // Down: what it had stays as last seen; back with the same models, nothing to tell.
        r.healthy = false;
        r.warm = [];
        watch.observe();
        r.healthy = true;
        r.warm = ["sdxl", "refiner"];
        watch.observe();
        r.warm = ["refiner"];
        watch.observe();
      },
      3,
    );
    expect(
      events.map((e) => [MeshEventKind[e.kind], e.detail.case === "model" && e.detail.value.model]),
    ).toEqual([
      ["MODEL_LOADED", "sdxl"],
      ["MODEL_LOADED", "refiner"],
      ["MODEL_UNLOADED", "sdxl"],
    ]);
  });

  it("tells a device's memory running low once, until it recovers", async () => {
    const hub = new MeshEventHub();
    const pool = inferencePool(["10.0.0.1:1"]);
    const watch = new ReplicaWatch([pool], hub);
    const [r] = pool.all();
    if (!r) throw new Error("no replica");
    const memory = (freeGib: number, leasedGib = 0) => ({
      deviceId: "cuda:0",
      totalBytes: 10 * GIB,
      freeBytes: freeGib * GIB,
      leasedBytes: leasedGib * GIB,
    });
    const events = await collect(
      hub,
      [MeshEventKind.DEVICE_MEMORY_LOW],
      () => {
        r.memory = memory(5);
        watch.observe();
        r.memory = memory(0.5);
        watch.observe();
        r.memory = memory(0.4);
        watch.observe();
        r.memory = memory(6);
        watch.observe();
        // Free, but promised to leases: low all the same.
        r.memory = memory(6, 9.5);
        watch.observe();
      },
      2,
    );
    expect(events).toHaveLength(2);
    const [first, second] = events;
    expect(first?.detail.case === "deviceMemory" && first.detail.value).toMatchObject({
      address: "10.0.0.1:1",
      deviceId: "cuda:0",
      freeBytes: BigInt(0.5 * GIB),
      totalBytes: BigInt(10 * GIB),
    });
    expect(second?.detail.case === "deviceMemory" && second.detail.value.leasedBytes).toBe(BigInt(9.5 * GIB));
  });
});

describe("mesh event hub", () => {
  const sessionEvent = (id: string, state: SessionState) =>
    create(SessionEventSchema, {
      kind: SessionEventKind.STATE,
      session: create(SessionSchema, { id, state, workflowId: "txt2img" }),
    });

  it("tells each session state once, whatever else its state events carry", async () => {
    const hub = new MeshEventHub();
    const lifecycle = new LifecycleEvents(hub);
    const events = await collect(
      hub,
      [MeshEventKind.SESSION],
      () => {
        lifecycle.onSession(sessionEvent("s1", SessionState.QUEUED));
        lifecycle.onSession(sessionEvent("s1", SessionState.RUNNING));
        lifecycle.onSession(sessionEvent("s1", SessionState.RUNNING)); // its step changed
        lifecycle.onSession(sessionEvent("s1", SessionState.COMPLETED));
      },
      3,
    );
    expect(events.map((e) => e.detail.case === "session" && SessionState[e.detail.value.state])).toEqual([
      "QUEUED",
      "RUNNING",
      "COMPLETED",
    ]);
  });

  it("filters by kind and by the watcher's tenant", async () => {
    const hub = new MeshEventHub();
    const lifecycle = new LifecycleEvents(hub);
    let n = 0;
    const act = () => {
      n++;
      lifecycle.onBatch(create(BatchSchema, { id: `b${n}`, state: BatchState.RUNNING }));
      lifecycle.onSession(sessionEvent(`s${n}`, SessionState.QUEUED));
      hub.publish({
        kind: MeshEventKind.REPLICA_UP,
        detail: { case: "replica", value: { domain: "inference" } },
      });
    };
    const batches = await collect(hub, [MeshEventKind.BATCH], act, 1);
    expect(batches.map((e) => e.detail.case)).toEqual(["batch"]);
    const mine = await collect(hub, [], act, 3, { tenant: "default" });
    expect(mine.map((e) => e.detail.case)).toEqual(["batch", "session", "replica"]);
    // Another tenant's watcher sees the mesh's replicas, not this tenant's sessions and batches.
    const other = await collect(hub, [], act, 1, { tenant: "acme" });
    expect(other.map((e) => e.detail.case)).toEqual(["replica"]);
  });

  it("keeps at most 1024 events for a watcher that does not read, dropping the oldest", async () => {
    const hub = new MeshEventHub();
    const stop = new AbortController();
    const it = hub.watch(new Set(), {}, stop.signal);
    const first = it.next();
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 3000; i++)
      hub.publish({ kind: MeshEventKind.MODEL_LOADED, detail: { case: "model", value: { model: `m${i}` } } });
    const got: string[] = [];
    const take = async (p: Promise<IteratorResult<MeshEvent>>) => {
      const r = await p;
      if (!r.done && r.value.detail.case === "model") got.push(r.value.detail.value.model);
    };
    await take(first);
    for (let i = 0; i < 1023; i++) await take(it.next());
    stop.abort();
    await it.return(undefined);
    expect(got).toHaveLength(1024);
    expect(got[0]).toBe("m1976");
    expect(got.at(-1)).toBe("m2999");
    expect(hub.watcherCount).toBe(0);
  });

  it("ends every stream when closed", async () => {
    const hub = new MeshEventHub();
    const it = hub.watch(new Set(), {}, new AbortController().signal);
    const pending = it.next();
    await new Promise((r) => setImmediate(r));
    hub.close(new Error("shutting down"));
    await expect(pending).rejects.toThrow("shutting down");
  });
});
