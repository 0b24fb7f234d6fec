import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { type Batch, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { type Session, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { estimateActivationBytes } from "@dmesh/spec";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServiceProcess, startService } from "../faults/support/service-process.js";
import { eventually, tinySpec } from "../faults/support/sessions.js";
import { connectOrchestrator, type OrchestratorClients } from "../faults/support/test-mesh.js";
import { leaseAllBut } from "../support/device-leases.js";

// Two inference hosts as real processes, each with its own device service, behind one orchestrator. A host's
// free device memory is set the way workers set memory aside: a memory lease on its device service, which its
// inference replica reads and reports (GetQueue), and the orchestrator sizes batch groups by.
const SIZE = 128;
const PER_IMAGE = estimateActivationBytes(SIZE, SIZE);
const STEPS = 8;

let dir: string;
const processes: ServiceProcess[] = [];
let inference: ServiceProcess[] = [];
let devices: ServiceProcess[] = [];
let orchestrator: ServiceProcess;
let clients: OrchestratorClients;
const deviceTransports: ReturnType<typeof createGrpcTransport>[] = [];
const report = (name: string, value: string) => console.log(`[batch-groups] ${name}: ${value}`);

function deviceOf(i: number) {
  const transport = createGrpcTransport({ address: devices[i]?.address ?? "" });
  deviceTransports.push(transport);
  return createClient(DeviceService, transport);
}

/** Leases all of host i's CPU memory but `leftBytes`, so that its replica reports room for that much. */
const leaveOnly = (i: number, leftBytes: number) => leaseAllBut(deviceOf(i), leftBytes, "batch-groups.test");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-batch-groups-"));
  const logDir = join(dir, "logs");
  mkdirSync(logDir, { recursive: true });
  await ensureTinyModel(join(dir, "models", "tiny-sdxl"));
  const start = async (...args: Parameters<typeof startService>) => {
    const p = await startService(...args);
    processes.push(p);
    return p;
  };
  devices = await Promise.all(
    ["device-a", "device-b"].map((label) => start("device", { label, env: {}, logDir })),
  );
  inference = await Promise.all(
    devices.map((device, i) =>
      start("inference", {
        label: `inference-${"ab"[i]}`,
        logDir,
        env: {
          MODELS_DIR: join(dir, "models"),
          DEVICE_URL: device.address,
          INTRA_OP_THREADS: "1",
          MAX_UNET_BATCH: "3",
          MAX_CONCURRENT_GENERATIONS: "3",
        },
      }),
    ),
  );
  const postprocess = await start("postprocess", { label: "postprocess", env: {}, logDir });
  orchestrator = await start("orchestrator", {
    label: "orchestrator",
    logDir,
    env: {
      DATA_DIR: join(dir, "data"),
      INFERENCE_URLS: inference.map((p) => p.address).join(","),
      POSTPROCESS_URLS: postprocess.address,
      DEVICE_URLS: devices.map((p) => p.address).join(","),
      HEALTH_INTERVAL_MS: "300",
      REPLICA_LOST_AFTER_MS: "3000",
      // Far above what the lost replica below is allowed: only health checks can end its stream early.
      STREAM_IDLE_TIMEOUT_MS: "60000",
      MAX_CONCURRENT_SESSIONS: "8",
      BATCH_WINDOW: "8",
      BATCH_GROUP_MAX: "8",
    },
  });
  clients = connectOrchestrator(orchestrator.address);
});
afterAll(async () => {
  clients?.close();
  for (const t of deviceTransports) t.close();
  for (const p of processes) if (p.isRunning()) process.kill(p.pid, "SIGCONT");
  await Promise.all(processes.map((p) => p.kill("SIGKILL")));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The inference rows of the mesh status, by address. */
async function inferenceStatus() {
  const { instructors } = await clients.mesh.getMeshStatus({});
  return new Map(instructors.filter((s) => s.domain === "inference").map((s) => [s.address, s]));
}

/** Waits until the orchestrator's health checks have certainly read host i's device with `leased` bytes. */
async function untilSeen(i: number, leased: (bytes: bigint) => boolean): Promise<void> {
  await eventually(
    async () =>
      leased((await inferenceStatus()).get(inference[i]?.address ?? "")?.deviceMemoryLeasedBytes ?? -1n)
        ? true
        : undefined,
    10_000,
    `host ${i}'s lease in the mesh status`,
  );
  // The status read it fresh; the replica's reading lives 1 s and health checks come every 300 ms.
  await new Promise((r) => setTimeout(r, 1500));
}

/** Runs a batch of `count` seeds of one spec to its end; returns the batch and each item's session. */
async function runBatch(count: number, firstSeed: number): Promise<{ batch: Batch; sessions: Session[] }> {
  const { batch: created } = await clients.processing.createBatch({
    workflowId: "txt2img",
    base: tinySpec({ size: SIZE, steps: STEPS, prompt: "a harbour at dawn" }),
    axes: [
      { field: "params.seed", valuesJson: Array.from({ length: count }, (_, i) => String(firstSeed + i)) },
    ],
  });
  let batch: Batch | undefined;
  for await (const res of clients.processing.executeBatch(
    { batchId: created?.id ?? "" },
    { timeoutMs: 50_000 },
  ))
    batch = res.event?.batch ?? batch;
  if (!batch) throw new Error("no batch event");
  const sessions = await Promise.all(
    batch.items.map(
      async (item) => (await clients.processing.getSession({ sessionId: item.sessionId })).session,
    ),
  );
  return { batch, sessions: sessions.filter((s): s is Session => s !== undefined) };
}

/** Each group's size, worker and its items' shared UNet steps. */
function groupsOf(batch: Batch, sessions: Session[]) {
  const groups = new Map<number, { worker: Set<string>; shared: number[]; attempts: number[] }>();
  batch.items.forEach((item, i) => {
    const session = sessions[i];
    const generate = session?.timings.find((t) => t.stepId === "generate");
    const group = groups.get(item.group) ?? { worker: new Set(), shared: [], attempts: [] };
    group.worker.add(session?.worker ?? "");
    group.shared.push(generate?.sharedUnetSteps ?? -1);
    group.attempts.push(session?.attempts ?? 0);
    groups.set(item.group, group);
  });
  return [...groups.entries()].map(([group, g]) => ({
    group,
    size: g.shared.length,
    workers: [...g.worker],
    shared: g.shared,
    attempts: g.attempts,
  }));
}

describe("batch items grouped onto replicas by their devices' free memory", () => {
  it("reports each inference replica's device memory in the mesh status", async () => {
    const rows = await inferenceStatus();
    expect(rows.size).toBe(2);
    for (const row of rows.values()) {
      expect(row.deviceId).toBe("cpu");
      expect(row.deviceMemoryTotalBytes).toBeGreaterThan(0n);
      expect(row.deviceMemoryFreeBytes).toBeGreaterThan(0n);
      expect(row.deviceMemoryLeasedBytes).toBe(0n);
    }
  });

  it("sends as many compatible items to a replica as its device has room for, and they share UNet runs", async () => {
    // Host a has room for 2.5 images, host b for far more than its MAX_UNET_BATCH of 3.
    const lease = await leaveOnly(0, Math.round(PER_IMAGE * 2.5));
    await untilSeen(0, (b) => b > 0n);
    const { batch, sessions } = await runBatch(5, 100);
    expect(BatchState[batch.state]).toBe("COMPLETED");
    const groups = groupsOf(batch, sessions);
    const expected = new Map([
      [inference[0]?.address, 2],
      [inference[1]?.address, 3],
    ]);
    for (const g of groups) {
      expect(g.workers).toHaveLength(1);
      expect(g.size).toBe(expected.get(g.workers[0]));
      expect(g.attempts.every((a) => a === 1)).toBe(true);
      // Every item of a group ran most of its steps in UNet runs shared with the others.
      for (const shared of g.shared) expect(shared).toBeGreaterThanOrEqual(STEPS / 2);
    }
    expect(groups.reduce((n, g) => n + g.size, 0)).toBe(5);
    expect(new Set(groups.map((g) => g.workers[0]))).toEqual(new Set(inference.map((p) => p.address)));
    report("with 2.5 images free on host a", JSON.stringify(groups));

    // Its memory back, host a takes as many as host b: the group size follows what the device reports.
    await deviceOf(0).releaseLease({ leaseId: lease });
    await untilSeen(0, (b) => b === 0n);
    const second = await runBatch(6, 200);
    const regrouped = groupsOf(second.batch, second.sessions);
    expect(regrouped.map((g) => g.size)).toEqual([3, 3]);
    expect(new Set(regrouped.flatMap((g) => g.workers))).toEqual(new Set(inference.map((p) => p.address)));
    for (const g of regrouped)
      for (const shared of g.shared) expect(shared).toBeGreaterThanOrEqual(STEPS / 2);
    report("with host a's memory free again", JSON.stringify(regrouped));
  });
});

describe("a replica that health checks cannot reach", () => {
  it("has its generation stream aborted, and the session continues on the other replica", async () => {
    const events: { session: Session; at: number }[] = [];
    let victim: ServiceProcess | undefined;
    let frozenAt = 0;
    for await (const { event } of clients.processing.executeWorkflow(
      { workflowId: "txt2img", spec: tinySpec({ size: 256, steps: 40, seed: 7 }) },
      { timeoutMs: 50_000 },
    )) {
      const session = event?.session;
      if (!session) continue;
      events.push({ session, at: performance.now() });
      if (!victim && session.denoiseStep >= 5) {
        victim = inference.find((p) => p.address === session.worker);
        if (!victim) throw new Error(`unknown worker ${session.worker}`);
        // Frozen: its connections stay open and silent, as over a cut link.
        process.kill(victim.pid, "SIGSTOP");
        frozenAt = performance.now();
      }
    }
    if (victim) process.kill(victim.pid, "SIGCONT");
    const last = events.at(-1)?.session;
    expect({ state: SessionState[last?.state ?? 0], error: last?.error }).toEqual({
      state: "COMPLETED",
      error: "",
    });
    expect(last?.worker).not.toBe(victim?.address);
    expect(last?.attempts).toBe(2);
    const resumed = events.find((e) => e.at > frozenAt && e.session.worker !== victim?.address);
    const afterMs = (resumed?.at ?? Number.POSITIVE_INFINITY) - frozenAt;
    // Lost after REPLICA_LOST_AFTER_MS (3 s) of failed health checks, each allowed 2 s; not after the 60 s
    // stream idle timeout nor the ~45 s of HTTP/2 keepalive.
    expect(afterMs).toBeGreaterThanOrEqual(2500);
    expect(afterMs).toBeLessThan(15_000);
    expect(readFileSync(orchestrator.logFile, "utf8")).toContain("calls to a lost replica aborted");
    report(
      "frozen inference replica",
      `the session went on elsewhere ${afterMs.toFixed(0)} ms after the freeze`,
    );
  });
});
