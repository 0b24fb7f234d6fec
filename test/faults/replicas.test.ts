import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Session,
  SessionAction,
  type SessionEvent,
  SessionEventKind,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Postgres, postgresUnavailable, startPostgres } from "../support/postgres-server.js";
import type { ServiceProcess } from "./support/service-process.js";
import { artifactBytes, eventually, type SpecInit, tinySpec } from "./support/sessions.js";
import { type OrchestratorClients, TestMesh } from "./support/test-mesh.js";

// Two orchestrator processes on one real PostgreSQL server, real inference and postprocess processes. A is the
// mesh's own orchestrator (restarted after it is killed), B the second replica.
const unavailable = postgresUnavailable();
const LEASE_MS = 1500;
let server: Postgres | undefined;
let mesh: TestMesh;
let b: { process: ServiceProcess; clients: OrchestratorClients };

beforeAll(async () => {
  if (unavailable) return;
  server = await startPostgres();
  mesh = await TestMesh.start({
    inferenceReplicas: 2,
    // Every Generate call gets an access-log line (debug), counted per session below.
    inferenceEnv: { LOG_LEVEL: "debug" },
    orchestratorEnv: {
      DATABASE_URL: server.url,
      ORCHESTRATOR_LEASE_MS: String(LEASE_MS),
      MAX_CONCURRENT_SESSIONS: "4",
      MAX_ATTEMPTS: "8",
      RETRY_BACKOFF_MS: "200",
      SHUTDOWN_GRACE_MS: "2000",
    },
  });
  b = await mesh.startAnotherOrchestrator("orchestrator-b");
}, 120_000);
afterAll(async () => {
  if (mesh?.orchestrator?.isRunning()) process.kill(mesh.orchestrator.pid, "SIGCONT");
  await mesh?.stop();
  server?.stop();
});

const report = (name: string, value: string) => console.log(`[replicas] ${name}: ${value}`);

/** Submits detached and returns the session once the orchestrator acknowledged it. */
async function submit(clients: OrchestratorClients, requestId: string, spec: SpecInit): Promise<Session> {
  const abort = new AbortController();
  try {
    for await (const res of clients.processing.executeWorkflow(
      { workflowId: "txt2img", spec, requestId, detach: true },
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

/** Watches the session on `clients` until it finishes; `onEvent` sees each event as it comes. */
async function watchToEnd(
  clients: OrchestratorClients,
  sessionId: string,
  onEvent: (event: SessionEvent) => void = () => {},
): Promise<Session> {
  let last: Session | undefined;
  for await (const { event } of clients.processing.watchSession({ sessionId }, { timeoutMs: 90_000 })) {
    if (!event) continue;
    onEvent(event);
    last = event.session ?? last;
  }
  if (!last) throw new Error(`no events for ${sessionId}`);
  return last;
}

/**
 * Generate calls the inference replicas answered, from their access logs: for one session (its request id),
 * or every one (undefined).
 */
function generateCalls(requestId?: string): number {
  let n = 0;
  for (const replica of mesh.inference) {
    for (const line of readFileSync(replica.logFile, "utf8").split("\n")) {
      if (!line.includes("/Generate")) continue;
      const entry = JSON.parse(line) as { rpc?: string; requestId?: string; msg?: string };
      if (!entry.rpc?.endsWith("/Generate") || !entry.msg?.startsWith("rpc")) continue;
      if (requestId === undefined || entry.requestId === requestId) n++;
    }
  }
  return n;
}

async function imageOf(clients: OrchestratorClients, session: Session): Promise<Buffer> {
  const [artifactId] = session.artifactIds;
  if (!artifactId) throw new Error(`session ${session.id} has no artifact`);
  return artifactBytes(clients, artifactId);
}

// A generation long enough to be caught part-way (a few seconds on the tiny model).
const longSpec = () => tinySpec({ size: 192, steps: 48, seed: 777 });
let reference: Buffer | undefined;
async function referenceImage(): Promise<Buffer> {
  if (!reference) {
    const session = await submit(b.clients, "reference", longSpec());
    reference = await imageOf(b.clients, await watchToEnd(b.clients, session.id));
  }
  return reference;
}

describe.skipIf(unavailable !== undefined)(
  `two orchestrators on one PostgreSQL database${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    it("run every session once between them, and a watcher on either replica sees the other's events", async () => {
      const a = mesh.clients;
      const submitted = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          submit(i % 2 === 0 ? a : b.clients, `both-${i}`, tinySpec({ seed: 100 + i, steps: 6 })),
        ),
      );
      // Each watched on the replica it was not submitted to.
      const finished = await Promise.all(
        submitted.map((s, i) => watchToEnd(i % 2 === 0 ? b.clients : a, s.id)),
      );
      expect(finished.map((s) => SessionState[s.state])).toEqual(Array(8).fill("COMPLETED"));
      // A session A runs, watched on B from its start: B relays A's progress as it happens.
      const seenOnB: SessionEvent[] = [];
      const long = await submit(a, "watched-across", tinySpec({ size: 128, steps: 24, seed: 9 }));
      const last = await watchToEnd(b.clients, long.id, (e) => seenOnB.push(e));
      expect(SessionState[last.state]).toBe("COMPLETED");
      expect(seenOnB.filter((e) => e.kind === SessionEventKind.PROGRESS).length).toBeGreaterThan(0);
      const sequences = seenOnB.map((e) => e.session?.sequence ?? 0n);
      expect(sequences).toEqual([...sequences].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
      // No session ran twice: one Generate call each, by whichever replica ran it.
      for (const i of submitted.keys()) expect(generateCalls(`both-${i}`), `both-${i}`).toBe(1);
      expect(generateCalls("watched-across")).toBe(1);
      // Either replica serves every artifact (one shared DATA_DIR).
      for (const s of finished)
        expect((await imageOf(a, s)).equals(await imageOf(b.clients, s)), s.id).toBe(true);
    });

    it("spread a batch over both replicas, each item claimed and generated once", async () => {
      const a = mesh.clients;
      const callsBefore = generateCalls();
      const { batch } = await a.processing.createBatch({
        workflowId: "txt2img",
        base: tinySpec({ steps: 6 }),
        axes: [{ field: "params.seed", valuesJson: Array.from({ length: 16 }, (_, i) => String(200 + i)) }],
        requestId: "spread-batch",
      });
      const batchId = batch?.id ?? "";
      type Batch = import("@dmesh/contracts/dmesh/processing/v1/batch_pb.js").Batch;
      const follow = async (clients: OrchestratorClients) => {
        let last: Batch | undefined;
        for await (const res of clients.processing.executeBatch({ batchId }, { timeoutMs: 90_000 }))
          last = res.event?.batch ?? last;
        return last;
      };
      // Executed on both at once: one feeds it (A, asked first), the other follows it in the database.
      const onA = follow(a);
      await new Promise((r) => setTimeout(r, 100));
      const [last, seenOnB] = await Promise.all([onA, follow(b.clients)]);
      expect(last?.completed).toBe(16);
      expect(seenOnB?.completed).toBe(16);
      const items = (await b.clients.processing.listSessions({ batchId, pageSize: 100 })).sessions;
      expect(items).toHaveLength(16);
      // Which replica ran each item: the one that logged claiming it.
      const claimedIn = (logFile: string) =>
        new Set(
          readFileSync(logFile, "utf8")
            .split("\n")
            .filter((l) => l.includes("claimed a session"))
            .map((l) => (JSON.parse(l) as { sessionId: string }).sessionId),
        );
      const byA = items.filter((s) => claimedIn(mesh.orchestrator.logFile).has(s.id));
      const byB = items.filter((s) => claimedIn(b.process.logFile).has(s.id));
      report("batch items run by each replica", `A ${byA.length}, B ${byB.length}`);
      expect(byA.length).toBeGreaterThan(0);
      expect(byB.length).toBeGreaterThan(0);
      expect(byA.length + byB.length).toBe(16);
      // One Generate call per item, whichever replica ran it (batch items' request ids carry slashes, which
      // an access log does not take as a request id: counted all together, nothing else runs meanwhile).
      expect(generateCalls() - callsBefore).toBe(16);
    });

    it("send control commands on to the replica running the session: paused there, resumed on the other to the same bytes, cancelled", async () => {
      const expected = await referenceImage();
      const a = mesh.clients;
      const session = await submit(a, "paused-across", longSpec());
      let steps = 0;
      let paused: Session | undefined;
      const watching = (async () => {
        for await (const { event } of b.clients.processing.watchSession(
          { sessionId: session.id },
          { timeoutMs: 90_000 },
        )) {
          steps = Math.max(steps, event?.session?.denoiseStep ?? 0);
          if (event?.session?.state === SessionState.PAUSED) paused = event.session;
          if (paused && event?.session?.state !== SessionState.PAUSED) break;
        }
      })();
      await eventually(() => (steps >= 4 ? true : undefined), 60_000, "denoising part-way, seen on B");
      // B does not run it: the pause goes to A, which answers once it applied it.
      await b.clients.processing.controlSession({ sessionId: session.id, action: SessionAction.PAUSE });
      await eventually(() => paused, 30_000, "PAUSED, seen on B");
      // Paused on A, resumed through B: B takes it over and finishes it from the checkpoint.
      await b.clients.processing.controlSession({ sessionId: session.id, action: SessionAction.RESUME });
      const done = await watchToEnd(b.clients, session.id);
      await watching;
      expect(SessionState[done.state]).toBe("COMPLETED");
      expect((await imageOf(a, done)).equals(expected)).toBe(true);

      const other = await submit(a, "cancelled-across", longSpec());
      let started = false;
      const ending = watchToEnd(b.clients, other.id, (e) => {
        started ||= (e.session?.denoiseStep ?? 0) > 0;
      });
      await eventually(() => (started ? true : undefined), 60_000, "denoising, seen on B");
      await b.clients.processing.controlSession({ sessionId: other.id, action: SessionAction.CANCEL });
      expect(SessionState[(await ending).state]).toBe("CANCELLED");
      // A refusal on the owner comes back as it is.
      const refused = await b.clients.processing
        .controlSession({ sessionId: other.id, action: SessionAction.PAUSE })
        .catch((err: unknown) => ConnectError.from(err));
      expect(refused instanceof ConnectError && Code[refused.code]).toBe("FailedPrecondition");
    });

    it("after a kill -9 of the replica feeding a batch, the other takes the feeding over and finishes it, each item once", async () => {
      const { batch } = await mesh.clients.processing.createBatch({
        workflowId: "txt2img",
        base: tinySpec({ size: 128, steps: 16 }),
        axes: [{ field: "params.seed", valuesJson: Array.from({ length: 12 }, (_, i) => String(300 + i)) }],
        requestId: "orphaned-batch",
      });
      const batchId = batch?.id ?? "";
      let completed = 0;
      const feeding = (async () => {
        try {
          for await (const res of mesh.clients.processing.executeBatch({ batchId }))
            completed = res.event?.batch?.completed ?? completed;
        } catch {
          // the feeder is killed
        }
      })();
      await eventually(() => (completed >= 2 ? true : undefined), 60_000, "two items completed");
      await mesh.orchestrator.kill("SIGKILL");
      await feeding;
      try {
        let last: import("@dmesh/contracts/dmesh/processing/v1/batch_pb.js").Batch | undefined;
        for await (const res of b.clients.processing.executeBatch({ batchId }, { timeoutMs: 90_000 }))
          last = res.event?.batch ?? last;
        expect(last?.completed).toBe(12);
        const items = (await b.clients.processing.listSessions({ batchId, pageSize: 100 })).sessions;
        expect(items).toHaveLength(12);
        expect(new Set(items.map((s) => s.spec?.params?.seed)).size).toBe(12);
      } finally {
        // The next tests need both replicas, whatever this one found.
        await mesh.startOrchestrator();
      }
    });

    it("after a kill -9 of the owner mid-session, the other replica adopts it within the lease and completes it to the same bytes", async () => {
      const expected = await referenceImage();
      const victim = await submit(mesh.clients, "killed-owner", longSpec());
      let steps = 0;
      const watching = watchToEnd(b.clients, victim.id, (e) => {
        steps = Math.max(steps, e.session?.denoiseStep ?? 0);
      });
      await eventually(() => (steps >= 8 ? true : undefined), 60_000, "denoising part-way, seen on B");
      await mesh.orchestrator.kill("SIGKILL");
      const killedAt = performance.now();
      const done = await watching;
      report("adopted and completed after the kill", `${Math.round(performance.now() - killedAt)} ms`);
      expect(SessionState[done.state]).toBe("COMPLETED");
      expect((await imageOf(b.clients, done)).equals(expected)).toBe(true);
      // The killed owner's call, cut, and the adopter's: never two at once for one session.
      expect(generateCalls("killed-owner")).toBe(2);
      await mesh.startOrchestrator();
    });

    it("after a SIGSTOP of the owner past its lease, the other adopts the session, and the revived owner's writes are refused", async () => {
      const expected = await referenceImage();
      const frozen = await submit(mesh.clients, "frozen-owner", longSpec());
      let steps = 0;
      const watching = watchToEnd(b.clients, frozen.id, (e) => {
        steps = Math.max(steps, e.session?.denoiseStep ?? 0);
      });
      await eventually(() => (steps >= 8 ? true : undefined), 60_000, "denoising part-way, seen on B");
      process.kill(mesh.orchestrator.pid, "SIGSTOP");
      let done: Session;
      try {
        done = await watching;
      } finally {
        process.kill(mesh.orchestrator.pid, "SIGCONT");
      }
      expect(SessionState[done.state]).toBe("COMPLETED");
      // The revived owner learns it lost the session: its run stops, its writes were refused.
      await eventually(
        () =>
          /taken over by another replica|adopted by another replica while this one was away/.test(
            readFileSync(mesh.orchestrator.logFile, "utf8"),
          )
            ? true
            : undefined,
        30_000,
        "the revived replica giving the session up",
      );
      const stored = (await b.clients.processing.getSession({ sessionId: frozen.id })).session;
      expect(SessionState[stored?.state ?? 0]).toBe("COMPLETED");
      expect(stored?.sequence).toBe(done.sequence);
      expect((await imageOf(b.clients, done)).equals(expected)).toBe(true);
      // And it still serves: a new session on it completes.
      const after = await submit(mesh.clients, "after-revival", tinySpec({ seed: 5 }));
      expect(SessionState[(await watchToEnd(mesh.clients, after.id)).state]).toBe("COMPLETED");
    });
  },
);
