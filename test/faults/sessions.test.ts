import { existsSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Batch, BatchAction, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import {
  SessionAction,
  type SessionEvent,
  SessionEventKind,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawImageInput } from "./support/images.js";
import { startService, unusedPort } from "./support/service-process.js";
import { artifactBytes, collect, eventually, tinySpec, waitFinished } from "./support/sessions.js";
import { connectOrchestrator, TestMesh } from "./support/test-mesh.js";

// Sessions and batches through a real mesh: two inference replicas, postprocess and the orchestrator, each
// its own process on 127.0.0.1, talking gRPC. Figures are printed, never asserted.
let mesh: TestMesh;

beforeAll(async () => {
  mesh = await TestMesh.start({ inferenceReplicas: 2 });
});
afterAll(async () => {
  await mesh?.stop();
});

const report = (name: string, value: string) => console.log(`[faults] ${name}: ${value}`);
const stateOf = (events: SessionEvent[]) => events.at(-1)?.session?.state;
const artifactPath = (id: string) => join(mesh.dataDir, "artifacts", id.slice(0, 2), id);

async function connectError(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("sessions", () => {
  it("runs 100 concurrent sessions to completion", async () => {
    const { processing } = mesh.clients;
    const started = performance.now();
    const runs = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        collect(
          processing.executeWorkflow(
            { workflowId: "txt2img", spec: tinySpec({ seed: i, steps: 2 }) },
            { timeoutMs: 55_000 },
          ),
        ),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const last = runs.map((events) => events.at(-1)?.session);
    expect(last.map((s) => s && SessionState[s.state])).toEqual(Array(100).fill("COMPLETED"));
    expect(new Set(last.map((s) => s?.id)).size).toBe(100);
    expect(last.every((s) => s?.artifactIds.length === 1)).toBe(true);
    // Every stream began with the snapshot and ended with the final state, in sequence order.
    for (const events of runs) {
      expect(events[0]?.kind).toBe(SessionEventKind.SNAPSHOT);
      const sequences = events.map((e) => e.session?.sequence ?? 0n);
      expect(sequences).toEqual([...sequences].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    const status = await mesh.clients.mesh.getMeshStatus({});
    expect([status.sessionsQueued, status.sessionsRunning]).toEqual([0, 0]);
    report(
      "100 concurrent sessions (64x64, 2 steps, MAX_CONCURRENT_SESSIONS=4)",
      `${seconds.toFixed(2)} s, ${(100 / seconds).toFixed(1)} sessions/s`,
    );
  });

  it("cancels a running session within about one denoising step and releases the replica", async () => {
    const { processing } = mesh.clients;
    const stream = processing.executeWorkflow({
      workflowId: "txt2img",
      spec: tinySpec({ size: 512, steps: 20, seed: 5 }),
    });
    const stepTimes: number[] = [];
    let cancelSentAt = 0;
    let cancelledAt = 0;
    let stepAtCancel = 0;
    let worker = "";
    for await (const { event } of stream) {
      const session = event?.session;
      if (!session) continue;
      if (event.kind === SessionEventKind.PROGRESS && session.denoiseStep > 0)
        stepTimes.push(performance.now());
      if (!cancelSentAt && session.denoiseStep >= 3) {
        stepAtCancel = session.denoiseStep;
        worker = session.worker;
        cancelSentAt = performance.now();
        const reply = await processing.controlSession({
          sessionId: session.id,
          action: SessionAction.CANCEL,
        });
        expect(reply.session?.id).toBe(session.id);
      }
      if (session.state === SessionState.CANCELLED) cancelledAt = performance.now();
    }
    expect(cancelledAt).toBeGreaterThan(0);
    const steps = stepTimes.slice(1).map((t, i) => t - (stepTimes[i] ?? t));
    const stepMs = steps.reduce((a, b) => a + b, 0) / Math.max(1, steps.length);
    // The replica stopped denoising: its queue empties and no more steps were reported.
    const replicaStatus = await eventually(
      async () => {
        const status = await mesh.clients.mesh.getMeshStatus({});
        const replica = status.instructors.find((i) => i.address === worker);
        return replica && replica.queueRunning === 0 ? replica : undefined;
      },
      10_000,
      "the replica to go idle",
    );
    expect(replicaStatus.queueRunning).toBe(0);
    expect(stepTimes.length).toBeLessThan(20);
    report(
      "cancel latency (512x512, 20 steps)",
      `${(cancelledAt - cancelSentAt).toFixed(1)} ms from ControlSession(CANCEL) to the CANCELLED event, cancelled at step ${stepAtCancel}; one denoising step takes ${stepMs.toFixed(1)} ms`,
    );
  });

  it("pauses and resumes to the same bytes as an uninterrupted run with the same seed", async () => {
    const { processing } = mesh.clients;
    const kite = { size: 256, steps: 40, seed: 77, prompt: "a red kite over dunes" };
    const spec = tinySpec(kite);
    let pausedAt = 0;
    const firstLeg = await collect(
      (async function* () {
        for await (const res of processing.executeWorkflow({ workflowId: "txt2img", spec })) {
          const s = res.event?.session;
          if (s && !pausedAt && s.denoiseStep >= 5) {
            pausedAt = s.denoiseStep;
            await processing.controlSession({ sessionId: s.id, action: SessionAction.PAUSE });
          }
          yield res;
        }
      })(),
    );
    const paused = firstLeg.at(-1)?.session;
    if (!paused) throw new Error("no session");
    expect(SessionState[paused.state]).toBe("PAUSED");
    expect(paused.artifactIds).toEqual([]);
    // Paused at a step boundary after the request, with the denoising state checkpointed there.
    expect(paused.denoiseStep).toBeGreaterThanOrEqual(pausedAt);
    expect(paused.denoiseStep).toBeLessThan(40);
    const pausedWorker = paused.worker;

    await processing.controlSession({ sessionId: paused.id, action: SessionAction.RESUME });
    const resumed = await waitFinished(mesh.clients, paused.id);
    expect({ state: SessionState[resumed.state], error: resumed.error }).toEqual({
      state: "COMPLETED",
      error: "",
    });
    const resumedBytes = await artifactBytes(mesh.clients, resumed.artifactIds[0] ?? "");

    const straight = (await collect(processing.executeWorkflow({ workflowId: "txt2img", spec }))).at(
      -1,
    )?.session;
    expect(straight?.state).toBe(SessionState.COMPLETED);
    const straightBytes = await artifactBytes(mesh.clients, straight?.artifactIds[0] ?? "");
    expect(resumedBytes.length).toBeGreaterThan(1000);
    expect(resumedBytes.equals(straightBytes)).toBe(true);
    // Content addressing: the same bytes are the same artifact.
    expect(resumed.artifactIds).toEqual(straight?.artifactIds);

    // The comparison can tell images apart: another seed gives other bytes.
    const other = (
      await collect(
        processing.executeWorkflow({
          workflowId: "txt2img",
          spec: tinySpec({ ...kite, seed: 78 }),
        }),
      )
    ).at(-1)?.session;
    expect((await artifactBytes(mesh.clients, other?.artifactIds[0] ?? "")).equals(straightBytes)).toBe(
      false,
    );
    report(
      "pause/resume",
      `paused at step ${paused.denoiseStep}/40 on ${pausedWorker}, resumed on ${resumed.worker}; ${resumedBytes.length} PNG bytes identical to the uninterrupted run`,
    );
  });

  it("returns the existing session for a repeated request id", async () => {
    const { processing } = mesh.clients;
    const requestId = `idem-${Date.now()}`;
    // Two submits racing with one id, then a third after the first finished (with another spec: ignored).
    const [a, b] = await Promise.all([
      collect(processing.executeWorkflow({ workflowId: "txt2img", spec: tinySpec({ seed: 9 }), requestId })),
      collect(processing.executeWorkflow({ workflowId: "txt2img", spec: tinySpec({ seed: 9 }), requestId })),
    ]);
    const id = a[0]?.session?.id;
    expect(id).toBeTruthy();
    expect(b[0]?.session?.id).toBe(id);
    const again = await collect(
      processing.executeWorkflow({
        workflowId: "txt2img",
        spec: tinySpec({ seed: 10, prompt: "else" }),
        requestId,
      }),
    );
    expect(again).toHaveLength(1);
    expect(again[0]?.kind).toBe(SessionEventKind.SNAPSHOT);
    expect(again[0]?.session?.id).toBe(id);
    expect(again[0]?.session?.state).toBe(SessionState.COMPLETED);
    expect(again[0]?.session?.spec?.params?.seed).toBe(9n);
    const all = await processing.listSessions({ pageSize: 1000 });
    expect(all.sessions.filter((s) => s.requestId === requestId)).toHaveLength(1);
  });

  it("gives a late watcher the snapshot first, then every change to the end", async () => {
    const { processing } = mesh.clients;
    // Submitted detached: the submitting stream is dropped after the first event and the session goes on.
    const submit = new AbortController();
    let sessionId = "";
    try {
      for await (const res of processing.executeWorkflow(
        { workflowId: "txt2img", spec: tinySpec({ size: 256, steps: 24, seed: 3 }), detach: true },
        { signal: submit.signal },
      )) {
        sessionId = res.event?.session?.id ?? "";
        submit.abort();
      }
    } catch (err) {
      expect(ConnectError.from(err).code).toBe(Code.Canceled);
    }
    await eventually(
      async () => ((await processing.getSession({ sessionId })).session?.denoiseStep ?? 0) >= 3 || undefined,
      20_000,
      "denoising",
    );
    const [first, second] = await Promise.all([
      collect(processing.watchSession({ sessionId })),
      collect(processing.watchSession({ sessionId })),
    ]);
    for (const events of [first, second]) {
      expect(events[0]?.kind).toBe(SessionEventKind.SNAPSHOT);
      expect(events[0]?.session?.state).toBe(SessionState.RUNNING);
      expect(events[0]?.session?.denoiseStep).toBeGreaterThanOrEqual(3);
      expect(events.some((e) => e.kind === SessionEventKind.ARTIFACT && e.artifactId)).toBe(true);
      expect(stateOf(events)).toBe(SessionState.COMPLETED);
    }
    // Both watchers saw the same final state; a watcher arriving after the end gets just that snapshot.
    expect(first.at(-1)?.session?.sequence).toBe(second.at(-1)?.session?.sequence);
    const late = await collect(processing.watchSession({ sessionId }));
    expect(late.map((e) => SessionEventKind[e.kind])).toEqual(["SNAPSHOT"]);
    expect(late[0]?.session?.state).toBe(SessionState.COMPLETED);
    expect(late[0]?.session?.artifactIds).toHaveLength(1);
  });

  it("deletes a session's rows and files, keeping bytes another session still references", async () => {
    const { processing, artifacts } = mesh.clients;
    const spec = tinySpec({ seed: 4242 });
    const [one, two] = await Promise.all(
      [0, 1].map(
        async () =>
          (await collect(processing.executeWorkflow({ workflowId: "txt2img", spec }))).at(-1)?.session,
      ),
    );
    const artifactId = one?.artifactIds[0] ?? "";
    expect(two?.artifactIds[0]).toBe(artifactId);
    expect(existsSync(artifactPath(artifactId))).toBe(true);

    await processing.deleteSession({ sessionId: one?.id ?? "" });
    expect((await connectError(processing.getSession({ sessionId: one?.id ?? "" }))).code).toBe(
      Code.NotFound,
    );
    expect((await artifacts.listArtifacts({ sessionId: one?.id ?? "" })).artifacts).toEqual([]);
    expect(existsSync(artifactPath(artifactId))).toBe(true);
    expect((await artifactBytes(mesh.clients, artifactId)).length).toBeGreaterThan(0);

    await processing.deleteSession({ sessionId: two?.id ?? "" });
    expect(existsSync(artifactPath(artifactId))).toBe(false);
    expect((await connectError(artifactBytes(mesh.clients, artifactId))).code).toBe(Code.NotFound);
    expect((await connectError(processing.deleteSession({ sessionId: two?.id ?? "" }))).code).toBe(
      Code.NotFound,
    );
  });

  it("runs img2img and inpaint from images sent inline or stored as artifacts", async () => {
    const { processing } = mesh.clients;
    const spec = tinySpec({ seed: 8, strength: 0.6 });
    const img2img = (
      await collect(
        processing.executeWorkflow({ workflowId: "img2img", spec, images: { image: rawImageInput(64) } }),
      )
    ).at(-1)?.session;
    expect(img2img?.error).toBe("");
    expect(img2img?.state).toBe(SessionState.COMPLETED);
    const stored = img2img?.artifactIds[0] ?? "";
    const fromArtifact = (
      await collect(
        processing.executeWorkflow({
          workflowId: "img2img",
          spec,
          images: { image: { source: { case: "artifactId", value: stored } } },
        }),
      )
    ).at(-1)?.session;
    expect(fromArtifact?.state).toBe(SessionState.COMPLETED);
    const inpaint = (
      await collect(
        processing.executeWorkflow({
          workflowId: "inpaint",
          spec,
          images: { image: rawImageInput(64), mask: rawImageInput(64, { from: 16, to: 48 }) },
        }),
      )
    ).at(-1)?.session;
    expect(inpaint?.error).toBe("");
    expect(inpaint?.state).toBe(SessionState.COMPLETED);
    const missing = await connectError(
      collect(
        processing.executeWorkflow({ workflowId: "inpaint", spec, images: { image: rawImageInput(64) } }),
      ),
    );
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(missing.metadata.get("dmesh-field")).toBe("images.mask");
  });
});

describe("multi-step workflows", () => {
  it("runs txt2img + hires fix to a 2x image, keeping the submitted spec so a restart makes the same image", async () => {
    const { processing, artifacts } = mesh.clients;
    const first = (
      await collect(processing.executeWorkflow({ workflowId: "txt2img-hires", spec: tinySpec({ seed: 88 }) }))
    ).at(-1)?.session;
    expect({ state: SessionState[first?.state ?? 0], error: first?.error }).toEqual({
      state: "COMPLETED",
      error: "",
    });
    expect(first?.timings.map((t) => t.stepId)).toEqual(["generate", "upscale", "hires", "encode"]);
    const [artifact] = (await artifacts.listArtifacts({ sessionId: first?.id ?? "" })).artifacts;
    expect([artifact?.width, artifact?.height]).toEqual([128, 128]);
    expect(first?.spec?.size).toMatchObject({ width: 64, height: 64 });
    expect(first?.spec?.params?.strength).toBeUndefined();
    // The infotext records the hires pass's strength (A1111's "Denoising strength").
    const png = (await artifactBytes(mesh.clients, artifact?.id ?? "")).toString("latin1");
    expect(png).toContain("Denoising strength: 0.5");
    expect(png).toContain("Seed: 88");
    await processing.controlSession({ sessionId: first?.id ?? "", action: SessionAction.RESTART });
    const again = await waitFinished(mesh.clients, first?.id ?? "");
    expect(again.artifactIds).toEqual(first?.artifactIds);
  });

  it("upscales and enhances an uploaded image without diffusion", async () => {
    const { processing, artifacts } = mesh.clients;
    const done = (
      await collect(
        processing.executeWorkflow({ workflowId: "upscale-enhance", images: { image: rawImageInput(64) } }),
      )
    ).at(-1)?.session;
    expect({ state: SessionState[done?.state ?? 0], error: done?.error }).toEqual({
      state: "COMPLETED",
      error: "",
    });
    expect(done?.attempts).toBe(0);
    const [artifact] = (await artifacts.listArtifacts({ sessionId: done?.id ?? "" })).artifacts;
    expect([artifact?.width, artifact?.height, artifact?.mediaType]).toEqual([128, 128, "image/png"]);
  });
});

describe("session controls", () => {
  it("cancels a session whose client goes away without detaching", async () => {
    const { processing } = mesh.clients;
    const leave = new AbortController();
    let sessionId = "";
    try {
      for await (const res of processing.executeWorkflow(
        { workflowId: "txt2img", spec: tinySpec({ size: 512, steps: 20, seed: 6 }) },
        { signal: leave.signal },
      )) {
        sessionId = res.event?.session?.id ?? sessionId;
        if ((res.event?.session?.denoiseStep ?? 0) >= 2) leave.abort();
      }
    } catch (err) {
      expect(ConnectError.from(err).code).toBe(Code.Canceled);
    }
    const ended = await waitFinished(mesh.clients, sessionId);
    expect(ended.state).toBe(SessionState.CANCELLED);
    expect(ended.denoiseStep).toBeLessThan(20);
  });

  it("restarts a finished session to the same image, and refuses what makes no sense", async () => {
    const { processing } = mesh.clients;
    const first = (
      await collect(processing.executeWorkflow({ workflowId: "txt2img", spec: tinySpec({ seed: 515 }) }))
    ).at(-1)?.session;
    expect(first?.state).toBe(SessionState.COMPLETED);
    const restarted = await processing.controlSession({
      sessionId: first?.id ?? "",
      action: SessionAction.RESTART,
    });
    // Queued again, and with a free slot already running by the time the reply is sent.
    expect([SessionState.QUEUED, SessionState.RUNNING]).toContain(restarted.session?.state);
    expect(restarted.session?.artifactIds).toEqual([]);
    const again = await waitFinished(mesh.clients, first?.id ?? "");
    expect(again.state).toBe(SessionState.COMPLETED);
    expect(again.artifactIds).toEqual(first?.artifactIds);
    expect(again.attempts).toBe(1);
    expect(again.sequence).toBeGreaterThan(first?.sequence ?? 0n);

    const refused = await connectError(
      processing.controlSession({ sessionId: first?.id ?? "", action: SessionAction.RESUME }),
    );
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.rawMessage).toContain("cannot resume a session that is completed");
    expect(
      (
        await connectError(
          processing.controlSession({ sessionId: "no-such-session", action: SessionAction.PAUSE }),
        )
      ).code,
    ).toBe(Code.NotFound);
    expect(
      (
        await connectError(
          processing.controlSession({ sessionId: first?.id ?? "", action: SessionAction.UNSPECIFIED }),
        )
      ).code,
    ).toBe(Code.InvalidArgument);
  });

  it("refuses a bad request naming the field, and creates nothing", async () => {
    const { processing } = mesh.clients;
    const before = (await processing.listSessions({ pageSize: 1000 })).sessions.length;
    const bad = await connectError(
      collect(
        processing.executeWorkflow({
          workflowId: "txt2img",
          spec: tinySpec({ size: 63 }),
        }),
      ),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.metadata.get("dmesh-field")).toBe("spec.size.width");
    const unknown = await connectError(
      collect(processing.executeWorkflow({ workflowId: "txt3img", spec: tinySpec() })),
    );
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.metadata.get("dmesh-field")).toBe("workflow_id");
    expect((await processing.listSessions({ pageSize: 1000 })).sessions.length).toBe(before);
  });
});

describe("batches", () => {
  it("runs a batch of 24 items over both inference replicas", async () => {
    const { processing } = mesh.clients;
    const { batch } = await processing.createBatch({
      workflowId: "txt2img",
      base: tinySpec({ steps: 4 }),
      axes: [
        { field: "conditioning.prompt", valuesJson: ['"a fox"', '"a heron"', '"a boat"', '"a lamp"'] },
        { field: "params.seed", valuesJson: ["1", "2", "3", "4", "5", "6"] },
      ],
    });
    expect(batch?.items).toHaveLength(24);
    const started = performance.now();
    let last = batch;
    for await (const res of processing.executeBatch({ batchId: batch?.id ?? "" }, { timeoutMs: 55_000 }))
      last = res.event?.batch ?? last;
    const seconds = (performance.now() - started) / 1000;
    expect(last?.state).toBe(BatchState.COMPLETED);
    expect(last?.completed).toBe(24);
    expect(last?.items.every((i) => i.state === SessionState.COMPLETED && i.sessionId)).toBe(true);
    const { sessions } = await processing.listSessions({ batchId: batch?.id ?? "", pageSize: 100 });
    expect(sessions).toHaveLength(24);
    const workers = new Map<string, number>();
    for (const s of sessions) workers.set(s.worker, (workers.get(s.worker) ?? 0) + 1);
    expect([...workers.keys()].sort()).toEqual(mesh.inference.map((p) => p.address).sort());
    // Each item kept its own spec: 4 prompts x 6 seeds, all distinct.
    expect(new Set(sessions.map((s) => `${s.spec?.conditioning?.prompt}/${s.spec?.params?.seed}`)).size).toBe(
      24,
    );
    report(
      "batch of 24 over two replicas",
      `${seconds.toFixed(2)} s; sessions per replica ${JSON.stringify(Object.fromEntries(workers))}`,
    );

    await processing.deleteBatch({ batchId: batch?.id ?? "" });
    expect(existsSync(artifactPath(sessions[0]?.artifactIds[0] ?? ""))).toBe(false);
    expect((await processing.listSessions({ batchId: batch?.id ?? "", pageSize: 100 })).sessions).toEqual([]);
    expect((await connectError(processing.getBatch({ batchId: batch?.id ?? "" }))).code).toBe(Code.NotFound);
  });

  it("runs batch style transfer: img2img over inputs carried in the items' specs", async () => {
    const { processing } = mesh.clients;
    const inputs = [64, 64, 64].map((size, i) => {
      const input = rawImageInput(size);
      if (input.source?.case === "image")
        input.source.value.data = (input.source.value.data as Uint8Array).map((v) => (v + 60 * i) % 256);
      return input.source?.case === "image" ? input.source.value : undefined;
    });
    const { batch } = await processing.createBatch({
      workflowId: "style-transfer",
      base: tinySpec({ prompt: "in the style of a woodcut", seed: 5, strength: 0.7 }),
      items: inputs.map((initImage) => ({ initImage })),
    });
    let last: Batch | undefined;
    for await (const res of processing.executeBatch({ batchId: batch?.id ?? "" }))
      last = res.event?.batch ?? last;
    expect(last?.items.map((i) => [SessionState[i.state], i.error])).toEqual(
      Array(3).fill(["COMPLETED", ""]),
    );
    const { sessions } = await processing.listSessions({ batchId: batch?.id ?? "" });
    // Three inputs, three different images; the sessions keep the inputs apart from their specs.
    expect(new Set(sessions.map((s) => s.artifactIds[0])).size).toBe(3);
    expect(sessions.map((s) => s.spec?.initImage?.data.length ?? 0)).toEqual([0, 0, 0]);
  });

  it("cancels a running batch, then retries its cancelled items to completion", async () => {
    const { processing } = mesh.clients;
    const { batch } = await processing.createBatch({
      workflowId: "txt2img",
      base: tinySpec({ size: 192, steps: 12 }),
      items: [1, 2, 3, 4, 5, 6].map((seed) => ({ params: { seed: BigInt(seed) } })),
    });
    const batchId = batch?.id ?? "";
    let cancelled: Batch | undefined;
    for await (const res of processing.executeBatch({ batchId })) {
      const b = res.event?.batch;
      if (b && !cancelled && b.completed >= 1)
        cancelled = (await processing.controlBatch({ batchId, action: BatchAction.CANCEL })).batch;
    }
    expect(cancelled?.state).toBe(BatchState.CANCELLED);
    const stopped = await eventually(
      async () => {
        const b = (await processing.getBatch({ batchId })).batch;
        return b?.items.every((i) =>
          [SessionState.COMPLETED, SessionState.CANCELLED, SessionState.UNSPECIFIED].includes(i.state),
        )
          ? b
          : undefined;
      },
      10_000,
      "the items to stop",
    );
    expect(stopped.completed).toBeLessThan(6);
    expect((await connectError(collect(processing.executeBatch({ batchId })))).code).toBe(
      Code.FailedPrecondition,
    );

    const retried = await processing.controlBatch({ batchId, action: BatchAction.RETRY_FAILED });
    expect(retried.batch?.state).toBe(BatchState.RUNNING);
    let last: Batch | undefined;
    for await (const res of processing.executeBatch({ batchId })) last = res.event?.batch ?? last;
    expect(last?.state).toBe(BatchState.COMPLETED);
    expect(last?.completed).toBe(6);
  });
});

describe("mesh cleanup", () => {
  it("prunes finished sessions older than asked, with their files, and reports every instructor", async () => {
    const { processing, mesh: meshClient } = mesh.clients;
    const session = (
      await collect(processing.executeWorkflow({ workflowId: "txt2img", spec: tinySpec({ seed: 616 }) }))
    ).at(-1)?.session;
    const artifactId = session?.artifactIds[0] ?? "";
    await new Promise((r) => setTimeout(r, 1100));
    const dry = await meshClient.cleanup({ pruneSessionsOlderThanSeconds: 1, dryRun: true });
    expect(dry.sessionsPruned).toBeGreaterThan(0);
    expect(existsSync(artifactPath(artifactId))).toBe(true);
    const done = await meshClient.cleanup({ pruneSessionsOlderThanSeconds: 1 });
    expect(done.sessionsPruned).toBe(dry.sessionsPruned);
    expect(done.bytesFreed).toBeGreaterThan(0n);
    expect(existsSync(artifactPath(artifactId))).toBe(false);
    expect((await connectError(processing.getSession({ sessionId: session?.id ?? "" }))).code).toBe(
      Code.NotFound,
    );

    const status = await meshClient.getMeshStatus({});
    const byDomain = (d: string) => status.instructors.filter((i) => i.domain === d);
    expect(byDomain("inference").map((i) => i.health)).toEqual(["SERVING", "SERVING"]);
    expect(byDomain("inference").every((i) => i.warmModels.length > 0)).toBe(true);
    expect(byDomain("postprocess").map((i) => i.health)).toEqual(["SERVING"]);
    expect(byDomain("device").map((i) => i.health)).toEqual(["UNREACHABLE"]);
  });
});

describe("DNS discovery", () => {
  it("finds the replicas behind dns:///localhost:port entries", async () => {
    const [inference] = mesh.inference;
    if (!inference) throw new Error("no replica");
    const orchestrator = await startService("orchestrator", {
      label: "orchestrator-dns",
      logDir: mesh.logDir,
      env: {
        DATA_DIR: join(mesh.dir, "dns-data"),
        INFERENCE_URLS: `dns:///localhost:${inference.port}`,
        POSTPROCESS_URLS: `dns:///localhost:${mesh.postprocess.port}`,
        DEVICE_URLS: `127.0.0.1:${await unusedPort()}`,
      },
    });
    try {
      const clients = connectOrchestrator(orchestrator.address);
      const events = await collect(
        clients.processing.executeWorkflow({ workflowId: "txt2img", spec: tinySpec() }),
      );
      clients.close();
      const session = events.at(-1)?.session;
      expect(session?.state).toBe(SessionState.COMPLETED);
      expect(session?.worker).toBe(`127.0.0.1:${inference.port}`);
    } finally {
      await orchestrator.kill();
    }
  });
});
