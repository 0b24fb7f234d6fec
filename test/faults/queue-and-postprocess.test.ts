import { Code, ConnectError } from "@connectrpc/connect";
import { type Batch, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import {
  type Session,
  SessionAction,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, eventually, type SpecInit, tinySpec, waitFinished } from "./support/sessions.js";
import { TestMesh } from "./support/test-mesh.js";

// One session at a time and two waiting; a call to a missing postprocess is made 5 times over ~6 s
// (backoff 0.4, 0.8, 1.6, 3.2 s), time enough for a restarted postprocess even on a loaded machine.
let mesh: TestMesh;

beforeAll(async () => {
  mesh = await TestMesh.start({
    orchestratorEnv: {
      MAX_CONCURRENT_SESSIONS: "1",
      MAX_QUEUED_SESSIONS: "2",
      MAX_ATTEMPTS: "5",
      RETRY_BACKOFF_MS: "400",
    },
  });
});
afterAll(async () => {
  await mesh?.stop();
});

const report = (name: string, value: string) => console.log(`[faults] ${name}: ${value}`);

/** Submits detached and returns the acknowledged session (or the refusal). */
async function submit(
  spec: SpecInit,
  options: { requestId?: string; priority?: number } = {},
): Promise<Session> {
  const abort = new AbortController();
  const request = { workflowId: "txt2img", spec, detach: true, ...options };
  try {
    for await (const res of mesh.clients.processing.executeWorkflow(request, { signal: abort.signal })) {
      abort.abort();
      if (res.event?.session) return res.event.session;
    }
  } catch (err) {
    const ce = ConnectError.from(err);
    if (ce.code !== Code.Canceled) throw ce;
  }
  throw new Error("no acknowledgement");
}

describe("a full queue", () => {
  it("refuses new sessions with RESOURCE_EXHAUSTED, and a batch waits for room instead of stalling", async () => {
    const long = (seed: number) => tinySpec({ size: 256, steps: 30, seed });
    const accepted = [
      await submit(long(1), { requestId: "q-1" }),
      await submit(long(2)),
      await submit(long(3)),
    ];
    const refused = await submit(long(4)).catch((err: ConnectError) => err);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
    // (grpc-js decodes grpc-message with decodeURI, so the comma arrives as %2C: see the report.)
    expect((refused as ConnectError).rawMessage).toMatch(
      /^the queue is full \(2 sessions waiting\)(,|%2C) try again later$/,
    );
    // A repeated request id is not new work: it gets its session even now.
    expect((await submit(long(1), { requestId: "q-1" })).id).toBe(accepted[0]?.id);
    const status = await mesh.clients.mesh.getMeshStatus({});
    expect([status.sessionsRunning, status.sessionsQueued]).toEqual([1, 2]);

    // None of the batch's items fits in the queue now; they go in as the standalone sessions finish.
    const { batch } = await mesh.clients.processing.createBatch({
      workflowId: "txt2img",
      base: tinySpec(),
      axes: [{ field: "params.seed", valuesJson: ["1", "2", "3"] }],
    });
    let last: Batch | undefined;
    for await (const res of mesh.clients.processing.executeBatch(
      { batchId: batch?.id ?? "" },
      { timeoutMs: 40_000 },
    ))
      last = res.event?.batch ?? last;
    expect(last?.state).toBe(BatchState.COMPLETED);
    expect(last?.completed).toBe(3);
    for (const s of accepted)
      expect((await waitFinished(mesh.clients, s.id)).state).toBe(SessionState.COMPLETED);
    report(
      "full queue",
      `4th submit refused: ${(refused as ConnectError).code === Code.ResourceExhausted ? "RESOURCE_EXHAUSTED" : "?"} "${(refused as ConnectError).rawMessage}"`,
    );
  });
});

describe("the queue's order", () => {
  const finishedAt = (s: Session) =>
    Number(s.updatedAt?.seconds ?? 0n) * 1000 + (s.updatedAt?.nanos ?? 0) / 1e6;

  it("lets a higher-priority session overtake one queued before it", async () => {
    const running = await submit(tinySpec({ size: 256, steps: 30, seed: 24 }));
    const low = await submit(tinySpec({ seed: 25 }));
    const high = await submit(tinySpec({ seed: 26 }), { priority: 5 });
    const [lowDone, highDone] = await Promise.all([
      waitFinished(mesh.clients, low.id),
      waitFinished(mesh.clients, high.id),
    ]);
    await waitFinished(mesh.clients, running.id);
    expect(finishedAt(highDone)).toBeLessThan(finishedAt(lowDone));
  });

  it("holds a paused queued session until it is resumed", async () => {
    const { processing } = mesh.clients;
    const running = await submit(tinySpec({ size: 256, steps: 30, seed: 21 }));
    const held = await submit(tinySpec({ seed: 22 }));
    const after = await submit(tinySpec({ seed: 23 }));
    expect(
      (await processing.controlSession({ sessionId: held.id, action: SessionAction.PAUSE })).session?.state,
    ).toBe(SessionState.PAUSED);
    for (const s of [running, after])
      expect((await waitFinished(mesh.clients, s.id)).state).toBe(SessionState.COMPLETED);
    expect((await processing.getSession({ sessionId: held.id })).session?.state).toBe(SessionState.PAUSED);
    await processing.controlSession({ sessionId: held.id, action: SessionAction.RESUME });
    const done = await waitFinished(mesh.clients, held.id);
    expect(done.state).toBe(SessionState.COMPLETED);
    expect(done.attempts).toBe(1);
  });
});

describe("postprocess down", () => {
  it("is retried with backoff, and the session completes once postprocess is back", async () => {
    await mesh.postprocess.kill("SIGKILL");
    const killedAt = performance.now();
    const session = await submit(tinySpec({ seed: 31 }));
    // The image is generated; encoding it waits for postprocess.
    await eventually(
      async () =>
        (await mesh.clients.processing.getSession({ sessionId: session.id })).session?.currentStep ===
        "encode"
          ? true
          : undefined,
      20_000,
      "the encode step",
    );
    await new Promise((r) => setTimeout(r, 300));
    await mesh.restartPostprocess();
    const backAt = performance.now();
    const done = await waitFinished(mesh.clients, session.id);
    expect({ state: SessionState[done.state], error: done.error }).toEqual({ state: "COMPLETED", error: "" });
    expect(done.attempts).toBe(1);
    const encode = done.timings.find((t) => t.stepId === "encode");
    expect(encode?.worker).toBe(mesh.postprocess.address);
    expect(encode?.seconds).toBeGreaterThan(0.3);
    report(
      "postprocess killed, back on its port after ~1 s",
      `postprocess back ${(backAt - killedAt).toFixed(0)} ms after the kill; the encode step took ${(encode?.seconds ?? 0).toFixed(2)} s of retries and the session completed (generate not repeated: 1 inference attempt)`,
    );
  });

  it("fails after MAX_ATTEMPTS with a clear reason when postprocess stays down", async () => {
    await mesh.postprocess.kill("SIGKILL");
    const started = performance.now();
    const events = await collect(
      mesh.clients.processing.executeWorkflow({ workflowId: "txt2img", spec: tinySpec({ seed: 32 }) }),
    );
    const last = events.at(-1)?.session;
    expect(last?.state).toBe(SessionState.FAILED);
    expect(last?.error).toMatch(
      /^postprocess encode on 127\.0\.0\.1:\d+ failed \(Unavailable: .+\); gave up after 5 attempt\(s\)$/,
    );
    // The generated image was kept: a RESTART would not be needed to encode it, only postprocess.
    expect(last?.timings.map((t) => t.stepId)).toEqual(["generate"]);
    report(
      "postprocess down for good",
      `FAILED after ${((performance.now() - started) / 1000).toFixed(2)} s: "${last?.error}"`,
    );
    await mesh.restartPostprocess();
  });
});
