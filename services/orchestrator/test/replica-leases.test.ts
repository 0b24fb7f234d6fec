import { create } from "@bufbuild/protobuf";
import { DataType } from "@dmesh/contracts/dmesh/common/v1/tensor_pb.js";
import { DenoiseCheckpointSchema } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  type SessionEvent,
  SessionEventKind,
  SessionEventSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { createLogger } from "@dmesh/runtime";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type Postgres, postgresUnavailable, startPostgres } from "../../../test/support/postgres-server.js";
import { PgDatabase } from "../src/store/postgres/pg-database.js";
import { FencedError, PgSessionStore } from "../src/store/postgres/pg-session-store.js";
import { ReplicaLeases } from "../src/store/postgres/replica-leases.js";
import { SessionEventBus } from "../src/store/postgres/session-event-bus.js";
import { newSession } from "../src/store/session-store.js";

// Two replicas on one real PostgreSQL server: each its own pool (its own connections), as two processes.
const logger = createLogger("test", "silent");
const unavailable = postgresUnavailable();
let server: Postgres | undefined;
let url = "";
let databases = 0;
const open: { close(): Promise<void> }[] = [];

interface Replica {
  db: PgDatabase;
  sessions: PgSessionStore;
  leases: ReplicaLeases;
}

async function replica(id: string | undefined, leaseMs = 60_000): Promise<Replica> {
  const db = await PgDatabase.open(url, logger, 5);
  open.push(db);
  const sessions = new PgSessionStore(db, id);
  return { db, sessions, leases: new ReplicaLeases(db, id ?? "none", leaseMs, sessions) };
}

const session = (id: string, prompt = id) =>
  newSession({ id, workflowId: "txt2img", spec: { conditioning: { prompt } } });
const checkpoint = (step: number) =>
  create(DenoiseCheckpointSchema, {
    step,
    totalSteps: 10,
    latents: { dtype: DataType.FLOAT32, shape: [1, 4, 1, 1], data: new Uint8Array(16).fill(step) },
    seed: 42n,
  });

beforeAll(async () => {
  if (!unavailable) server = await startPostgres();
});
afterAll(() => server?.stop());
beforeEach(() => {
  if (server) url = server.createDatabase(`replicas_${++databases}`);
});
afterEach(async () => {
  for (const db of open.splice(0)) await db.close();
});

describe.skipIf(unavailable !== undefined)(
  `replicas on one PostgreSQL database${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    it("claim each unowned session once between them (FOR UPDATE SKIP LOCKED), however they race", async () => {
      const submitter = await replica(undefined);
      const ids = Array.from({ length: 60 }, (_, i) => `s${String(i).padStart(2, "0")}`);
      for (const id of ids) await submitter.sessions.create(session(id), {});
      const [a, b] = [await replica("replica-a"), await replica("replica-b")];
      await Promise.all([a.leases.heartbeat(), b.leases.heartbeat()]);
      const claimAll = async (r: Replica) => {
        const got: string[] = [];
        for (let round = 0; round < 100; round++) {
          const claimed = await r.leases.claim(2);
          if (claimed.length === 0) break;
          got.push(...claimed.map((c) => c.session.id));
          for (const c of claimed) expect(c.epoch).toBe(1);
        }
        return got;
      };
      const [byA, byB] = await Promise.all([claimAll(a), claimAll(b)]);
      expect(byA.filter((id) => byB.includes(id))).toEqual([]);
      expect([...byA, ...byB].sort()).toEqual(ids);
      // Owned by a live replica: nothing left to claim for either.
      expect(await a.leases.claim(10)).toEqual([]);
      expect(await b.leases.claim(10)).toEqual([]);
    });

    it("adopt a dead replica's session once its lease runs out, resume from its checkpoint, and refuse the old owner's writes", async () => {
      // The owner's lease is short, so that its running out is quick to wait for.
      const a = await replica("replica-a", 300);
      const b = await replica("replica-b");
      await a.leases.heartbeat();
      await b.leases.heartbeat();
      const s = session("s1");
      await a.sessions.create(s, {});
      s.state = SessionState.RUNNING;
      s.denoiseStep = 4;
      await a.sessions.saveWithCheckpoint(s, checkpoint(4));
      // Owned, by a replica whose lease is live: not B's to take.
      expect(await b.leases.claim(10)).toEqual([]);

      // A stops renewing (frozen or dead); once its lease is over, B adopts the session under a new epoch.
      let adopted: Awaited<ReturnType<ReplicaLeases["claim"]>> = [];
      await vi.waitFor(
        async () => {
          adopted = await b.leases.claim(10);
          expect(adopted.map((c) => c.session.id)).toEqual(["s1"]);
        },
        { timeout: 15_000, interval: 100 },
      );
      expect(adopted[0]?.epoch).toBe(2);
      expect(adopted[0]?.session.denoiseStep).toBe(4);
      expect((await b.sessions.checkpoint("s1"))?.step).toBe(4);
      const mine = adopted[0]?.session ?? s;
      mine.currentStep = "adopted by b";
      await b.sessions.saveWithCheckpoint(mine, checkpoint(5));

      // A revives and writes with its old epoch: refused, and B's state stays.
      s.currentStep = "still a";
      await expect(a.sessions.save(s)).rejects.toBeInstanceOf(FencedError);
      await expect(a.sessions.saveWithCheckpoint(s, checkpoint(9))).rejects.toBeInstanceOf(FencedError);
      await expect(
        a.sessions.putInputs("s1", {
          "step.generate.0": create(ImageInputSchema, { source: { case: "artifactId", value: "x" } }),
        }),
      ).rejects.toBeInstanceOf(FencedError);
      expect((await b.sessions.get("s1"))?.currentStep).toBe("adopted by b");
      expect((await b.sessions.checkpoint("s1"))?.step).toBe(5);
      expect(Object.keys(await b.sessions.inputs("s1"))).toEqual([]);
      // Its next heartbeat tells it what it lost; B's writes carry on.
      await a.leases.heartbeat();
      expect(a.sessions.epochOf("s1")).toBeUndefined();
      mine.state = SessionState.COMPLETED;
      await b.sessions.save(mine);
      expect((await a.sessions.get("s1"))?.state).toBe(SessionState.COMPLETED);
    });

    it("tell the revived owner which sessions it lost, and hand released ones over at once", async () => {
      const a = await replica("replica-a", 300);
      const b = await replica("replica-b");
      await Promise.all([a.leases.heartbeat(), b.leases.heartbeat()]);
      for (const id of ["kept", "lost"]) await a.sessions.create(session(id), {});
      await a.leases.release(["kept"]);
      expect((await b.leases.claim(10)).map((c) => c.session.id)).toEqual(["kept"]);
      await vi.waitFor(
        async () => expect((await b.leases.claim(10)).map((c) => c.session.id)).toEqual(["lost"]),
        { timeout: 15_000, interval: 100 },
      );
      expect(await a.leases.heartbeat()).toEqual({ lost: ["lost"] });
      expect(await a.leases.live()).toEqual(["replica-a", "replica-b"]);
      await a.leases.leave();
      expect(await b.leases.live()).toEqual(["replica-b"]);
    });

    it("carry every session event to the other replica's watchers (LISTEN/NOTIFY), in order, large ones included", async () => {
      const a = await replica("replica-a");
      const b = await replica("replica-b");
      const busA = new SessionEventBus(a.db, url, "replica-a", a.sessions, logger);
      const busB = new SessionEventBus(b.db, url, "replica-b", b.sessions, logger);
      open.push(busA, busB);
      const seenByB: SessionEvent[] = [];
      const seenByA: SessionEvent[] = [];
      await busB.subscribe((event, from) => {
        expect(from).toBe("replica-a");
        seenByB.push(event);
      });
      await busA.subscribe((event) => seenByA.push(event));
      const s = session("s1");
      await a.sessions.create(s, {});
      for (let i = 1; i <= 30; i++) {
        s.sequence = BigInt(i);
        s.progress = i / 30;
        await busA.publish(
          create(SessionEventSchema, {
            kind: SessionEventKind.PROGRESS,
            session: s,
            preview: { data: new Uint8Array(20_000), width: 64, height: 64, channels: 3 },
          }),
        );
      }
      // Over a notification's 8000 bytes: it goes by reference, and B reads the session from the database.
      const large = session("s2", "p".repeat(12_000));
      large.sequence = 7n;
      await a.sessions.create(large, {});
      await busA.publish(create(SessionEventSchema, { kind: SessionEventKind.STATE, session: large }));
      await vi.waitFor(() => expect(seenByB).toHaveLength(31), { timeout: 10_000 });
      expect(seenByB.slice(0, 30).map((e) => e.session?.sequence)).toEqual(
        Array.from({ length: 30 }, (_, i) => BigInt(i + 1)),
      );
      expect(seenByB[0]?.preview).toBeUndefined();
      expect(seenByB[30]?.session?.spec?.conditioning?.prompt).toHaveLength(12_000);
      // A replica does not hear its own events back (its watchers were told directly).
      expect(seenByA).toEqual([]);
    });
  },
);
