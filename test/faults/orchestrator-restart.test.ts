import { Code, ConnectError } from "@connectrpc/connect";
import { type Batch, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import {
  type Session,
  SessionEventKind,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { artifactBytes, collect, eventually, tinySpec } from "./support/sessions.js";
import { TestMesh } from "./support/test-mesh.js";

// The orchestrator dies (SIGKILL) or is stopped (SIGTERM) with work in flight, and starts again over the
// same SQLite file and artifact directory.
let mesh: TestMesh;

beforeAll(async () => {
  mesh = await TestMesh.start({
    inferenceReplicas: 2,
    orchestratorEnv: { MAX_CONCURRENT_SESSIONS: "2", BATCH_WINDOW: "3", SHUTDOWN_GRACE_MS: "2000" },
  });
});
afterAll(async () => {
  await mesh?.stop();
});

const report = (name: string, value: string) => console.log(`[faults] ${name}: ${value}`);

/** Submits a session detached and returns once the orchestrator acknowledged it (the first event). */
async function submitDetached(seed: number): Promise<Session> {
  const abort = new AbortController();
  try {
    for await (const res of mesh.clients.processing.executeWorkflow(
      { workflowId: "txt2img", spec: tinySpec({ size: 192, steps: 32, seed }), detach: true },
      { signal: abort.signal },
    )) {
      const session = res.event?.session;
      abort.abort();
      if (session) return session;
    }
  } catch (err) {
    if (ConnectError.from(err).code !== Code.Canceled) throw err;
  }
  throw new Error("no acknowledgement");
}

describe("an orchestrator killed with SIGKILL mid-batch", () => {
  it("loses nothing acknowledged: queued work runs, running sessions resume, watchers reattach", async () => {
    const { processing } = mesh.clients;
    const { batch: created } = await processing.createBatch({
      workflowId: "txt2img",
      base: tinySpec({ size: 192, steps: 32 }),
      axes: [{ field: "params.seed", valuesJson: ["11", "12", "13", "14", "15", "16", "17", "18"] }],
      requestId: "restart-batch",
    });
    const batchId = created?.id ?? "";
    // Watch the batch until two items completed and another one is part-way through denoising.
    let seen: Batch | undefined;
    const watching = (async () => {
      try {
        for await (const res of processing.executeBatch({ batchId })) seen = res.event?.batch ?? seen;
      } catch (err) {
        return ConnectError.from(err);
      }
      return undefined;
    })();
    const standalone = await Promise.all([101, 102, 103].map(submitDetached));
    // What a client knew just before the kill: every session, one of them part-way through denoising.
    const { before, running } = await eventually(
      async () => {
        if ((seen?.completed ?? 0) < 2) return undefined;
        const before = (await processing.listSessions({ pageSize: 1000 })).sessions;
        const running = before.find(
          (s) => s.state === SessionState.RUNNING && s.denoiseStep >= 4 && s.denoiseStep <= 16,
        );
        return running && { before, running };
      },
      30_000,
      "two completed items and one part-way",
    );
    await mesh.orchestrator.kill("SIGKILL");
    const completedBefore = before.filter((s) => s.state === SessionState.COMPLETED);
    const queuedBefore = before.filter((s) => s.state === SessionState.QUEUED);
    const streamError = await watching;
    expect(streamError?.code).toBe(Code.Unavailable);
    const restartedAt = performance.now();
    await mesh.startOrchestrator();
    const readyMs = performance.now() - restartedAt;
    const after = mesh.clients.processing;

    // Every session acknowledged before the kill is there, the finished ones unchanged with their images.
    const afterList = (await after.listSessions({ pageSize: 1000 })).sessions;
    expect(afterList.map((s) => s.id).sort()).toEqual(expect.arrayContaining(before.map((s) => s.id).sort()));
    for (const s of completedBefore) {
      const now = afterList.find((x) => x.id === s.id);
      expect(now?.state).toBe(SessionState.COMPLETED);
      expect(now?.artifactIds).toEqual(s.artifactIds);
      expect((await artifactBytes(mesh.clients, s.artifactIds[0] ?? "")).length).toBeGreaterThan(0);
    }

    // Watchers reattach, to the session that was running and to one that was queued: the snapshot first,
    // then every change to the end (the queued one runs while watched).
    const queuedLast = queuedBefore.at(-1);
    if (!queuedLast) throw new Error("nothing was queued at the kill");
    const [watched, watchedQueued] = await Promise.all(
      [running.id, queuedLast.id].map((sessionId) =>
        collect(after.watchSession({ sessionId }, { timeoutMs: 30_000 })),
      ),
    );
    if (!watched || !watchedQueued) throw new Error("no watch");
    expect(watched[0]?.kind).toBe(SessionEventKind.SNAPSHOT);
    expect(watchedQueued[0]?.kind).toBe(SessionEventKind.SNAPSHOT);
    expect(watchedQueued.some((e) => e.kind === SessionEventKind.PROGRESS)).toBe(true);
    expect(watchedQueued.some((e) => e.kind === SessionEventKind.ARTIFACT)).toBe(true);
    expect(watchedQueued.at(-1)?.session?.state).toBe(SessionState.COMPLETED);
    const resumed = watched.at(-1)?.session;
    expect({ state: SessionState[resumed?.state ?? 0], error: resumed?.error }).toEqual({
      state: "COMPLETED",
      error: "",
    });
    // It went on from its checkpoint: a second generate attempt that reported no step below the one stored.
    expect(resumed?.attempts).toBeGreaterThanOrEqual(2);
    const resumedSteps = watched
      .filter((e) => e.kind === SessionEventKind.PROGRESS && (e.session?.denoiseStep ?? 0) > 0)
      .map((e) => e.session?.denoiseStep ?? 0);
    if (resumedSteps.length > 0)
      expect(Math.min(...resumedSteps)).toBeGreaterThanOrEqual(running.denoiseStep - 1);
    // And made the image an uninterrupted run with its spec makes.
    const straight = (await collect(after.executeWorkflow({ workflowId: "txt2img", spec: running.spec }))).at(
      -1,
    )?.session;
    expect(straight?.artifactIds).toEqual(resumed?.artifactIds);

    // The batch finishes, each item once: no item got a second session.
    let batch: Batch | undefined;
    for await (const res of after.executeBatch({ batchId }, { timeoutMs: 40_000 }))
      batch = res.event?.batch ?? batch;
    expect(batch?.state).toBe(BatchState.COMPLETED);
    expect(batch?.completed).toBe(8);
    const batchSessions = (await after.listSessions({ batchId, pageSize: 100 })).sessions;
    expect(batchSessions).toHaveLength(8);
    expect(new Set(batchSessions.map((s) => s.spec?.params?.seed)).size).toBe(8);

    // The standalone sessions, queued or running at the kill, all complete.
    for (const s of standalone) {
      const done = await eventually(
        async () => {
          const { session } = await after.getSession({ sessionId: s.id });
          return session &&
            [SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED].includes(session.state)
            ? session
            : undefined;
        },
        30_000,
        `standalone session ${s.id}`,
      );
      expect(done.state).toBe(SessionState.COMPLETED);
    }
    // The same request id still finds the same batch.
    expect(
      (await after.createBatch({ workflowId: "txt2img", base: tinySpec(), requestId: "restart-batch" })).batch
        ?.id,
    ).toBe(batchId);
    report(
      "SIGKILL of the orchestrator mid-batch",
      `at the kill: ${completedBefore.length} completed, ${queuedBefore.length} queued, session ${running.id.slice(0, 8)} at step ${running.denoiseStep}/32; restarted and ready in ${readyMs.toFixed(0)} ms; it resumed (attempts ${resumed?.attempts}, its reattached watcher saw ${resumedSteps.length} denoising events) to the uninterrupted run's bytes, a watcher of a queued one saw ${watchedQueued.length} events to COMPLETED, and the batch completed 8/8 with 8 sessions`,
    );
  });
});

describe("an orchestrator stopped with SIGTERM", () => {
  it("does not cancel the sessions it was running: they resume on the next start", async () => {
    const { processing } = mesh.clients;
    const events: Session[] = [];
    let terminatedAt = 0;
    let streamError: ConnectError | undefined;
    try {
      for await (const { event } of processing.executeWorkflow({
        workflowId: "txt2img",
        spec: tinySpec({ size: 256, steps: 30, seed: 5 }),
      })) {
        if (!event?.session) continue;
        events.push(event.session);
        if (!terminatedAt && event.session.denoiseStep >= 5) {
          terminatedAt = performance.now();
          void mesh.orchestrator.kill("SIGTERM");
        }
      }
    } catch (err) {
      streamError = ConnectError.from(err);
    }
    const endedMs = performance.now() - terminatedAt;
    await mesh.orchestrator.exited;
    // The attached client is told to come back, not that its session was cancelled.
    expect(streamError?.code).toBe(Code.Unavailable);
    expect(events.map((s) => s.state)).not.toContain(SessionState.CANCELLED);
    const sessionId = events[0]?.id ?? "";

    await mesh.startOrchestrator();
    const watched = await collect(mesh.clients.processing.watchSession({ sessionId }, { timeoutMs: 30_000 }));
    const last = watched.at(-1)?.session;
    expect({ state: SessionState[last?.state ?? 0], error: last?.error }).toEqual({
      state: "COMPLETED",
      error: "",
    });
    report(
      "SIGTERM of the orchestrator mid-session",
      `the client's stream ended (${Code[streamError?.code ?? 0]}) ${endedMs.toFixed(0)} ms after SIGTERM; after a restart the session resumed and completed`,
    );
  });
});
