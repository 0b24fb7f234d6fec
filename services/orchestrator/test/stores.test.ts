import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { DataType } from "@dmesh/contracts/dmesh/common/v1/tensor_pb.js";
import { DenoiseCheckpointSchema } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { BatchSchema, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { SessionSchema, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { createLogger, DEFAULT_TENANT } from "@dmesh/runtime";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { type Postgres, postgresUnavailable, startPostgres } from "../../../test/support/postgres-server.js";
import { type Db, MIGRATIONS, openDatabase } from "../src/store/database.js";
import { openStores, type Stores } from "../src/store/open-stores.js";
import { PG_MIGRATIONS } from "../src/store/postgres/pg-migrations.js";
import { newSession } from "../src/store/session-store.js";
import { STEP_TIMINGS_KEPT } from "../src/store/step-timing-store.js";
import { WorkflowCatalog } from "../src/workflows/workflow-catalog.js";
import type { WorkflowDefinition } from "../src/workflows/workflow-definition.js";

const logger = createLogger("test", "silent");
let dir: string;
const dbPath = () => join(dir, "dmesh.sqlite");
const artifactDir = () => join(dir, "artifacts");

/** One database kind the stores run on: the same tests run against each. */
interface Backend {
  readonly name: string;
  /** Why its tests skip here; undefined when they run. */
  readonly unavailable: string | undefined;
  /** A fresh, empty database for the next test. */
  fresh(): Promise<void>;
  /** The test's database URL for openStores ("" for SQLite in `dir`). */
  url(): string;
  /** A statement's rows, on a connection of the test's own. */
  query(sql: string): Promise<Record<string, unknown>[]>;
}

let server: Postgres | undefined;
let databases = 0;
let current = "";
const postgresBackend: Backend = {
  name: "PostgreSQL",
  unavailable: postgresUnavailable(),
  async fresh() {
    if (!server) throw new Error("no server");
    current = server.createDatabase(`store_test_${++databases}`);
  },
  url: () => current,
  async query(sql) {
    const client = new pg.Client({ connectionString: current });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  },
};
const sqliteBackend: Backend = {
  name: "SQLite",
  unavailable: undefined,
  async fresh() {},
  url: () => "",
  async query(sql) {
    const db = new Database(dbPath());
    try {
      return db.prepare(sql).all() as Record<string, unknown>[];
    } finally {
      db.close();
    }
  },
};

beforeAll(async () => {
  if (!postgresBackend.unavailable) server = await startPostgres();
});
afterAll(() => server?.stop());

let opened: Stores[] = [];
async function openOn(backend: Backend): Promise<Stores> {
  const stores = await openStores({ databaseUrl: backend.url(), dataDir: dir }, logger);
  opened.push(stores);
  return stores;
}

function session(
  id: string,
  init: { requestId?: string; priority?: number; batchId?: string; tenant?: string } = {},
) {
  return newSession({ id, workflowId: "txt2img", spec: { conditioning: { prompt: id } }, ...init });
}

const workflow = (id: string, name: string): WorkflowDefinition => ({
  id,
  name,
  description: "",
  categories: [],
  inputs: [{ name: "spec", type: "spec", required: true, description: "" }],
  steps: [
    {
      id: "generate",
      kind: "generate",
      params: { mode: "txt2img" },
      inputs: { spec: "input.spec" },
      dependsOn: [],
    },
    {
      id: "encode",
      kind: "encode",
      params: {},
      inputs: { image: "generate.images", spec: "input.spec" },
      dependsOn: [],
    },
  ],
});

const image = (bytes: number[]) =>
  create(ImageInputSchema, {
    source: { case: "image", value: { data: new Uint8Array(bytes), width: 1, height: 1, channels: 3 } },
  });
const checkpoint = (step: number) =>
  create(DenoiseCheckpointSchema, {
    step,
    totalSteps: 10,
    latents: { dtype: DataType.FLOAT32, shape: [1, 4, 1, 1], data: new Uint8Array(16).fill(step) },
    seed: 42n,
  });
const meta = (sessionId: string, imageIndex = 0, tenant = DEFAULT_TENANT) => ({
  tenant,
  sessionId,
  mediaType: "image/png",
  width: 8,
  height: 8,
  imageIndex,
  seed: 7n,
});
const artifactFiles = () =>
  existsSync(artifactDir())
    ? readdirSync(artifactDir(), { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    : [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-store-"));
});
afterEach(async () => {
  for (const stores of opened) await stores.close();
  opened = [];
  rmSync(dir, { recursive: true, force: true });
});

for (const backend of [sqliteBackend, postgresBackend]) {
  describe.skipIf(backend.unavailable !== undefined)(
    `on ${backend.name}${backend.unavailable ? ` (skipped: ${backend.unavailable})` : ""}`,
    () => {
      beforeEach(() => backend.fresh());
      const open = () => openOn(backend);

      describe("SessionStore", () => {
        it("creates sessions with their inputs, saves changes, finds them by id, request id and state", async () => {
          const { sessions } = await open();
          await sessions.create(session("a", { requestId: "req-a", priority: 1 }), {
            image: image([1, 2, 3]),
          });
          await sessions.create(session("b", { priority: 5 }), {});
          await sessions.create(session("c", { batchId: "batch-1" }), {});
          expect((await sessions.get("a"))?.spec?.conditioning?.prompt).toBe("a");
          expect((await sessions.getByRequestId(DEFAULT_TENANT, "req-a"))?.id).toBe("a");
          expect(await sessions.getByRequestId(DEFAULT_TENANT, "nope")).toBeUndefined();
          expect(await sessions.getByRequestId("another", "req-a")).toBeUndefined();
          const input = (await sessions.inputs("a")).image?.source;
          expect(input?.case === "image" && [...input.value.data]).toEqual([1, 2, 3]);

          const b = await sessions.get("b");
          if (!b) throw new Error("no b");
          b.state = SessionState.RUNNING;
          b.currentStep = "generate";
          await sessions.save(b);
          expect((await sessions.get("b"))?.currentStep).toBe("generate");
          // Queued first by priority (higher first), then by age.
          expect((await sessions.listByState(SessionState.QUEUED)).map((s) => s.id)).toEqual(["a", "c"]);
          expect((await sessions.listByState(SessionState.RUNNING)).map((s) => s.id)).toEqual(["b"]);
          const list = async (filter: {
            states: SessionState[];
            batchId: string;
            limit: number;
            after: string;
          }) => (await sessions.list({ tenant: DEFAULT_TENANT, ...filter })).map((s) => s.id);
          expect(await list({ states: [], batchId: "batch-1", limit: 10, after: "" })).toEqual(["c"]);
          expect(await list({ states: [SessionState.QUEUED], batchId: "", limit: 1, after: "a" })).toEqual([
            "c",
          ]);
          expect(
            await sessions.list({ tenant: "another", states: [], batchId: "", limit: 10, after: "" }),
          ).toEqual([]);
          expect((await sessions.counts()).get(SessionState.QUEUED)).toBe(2);
        });

        it("refuses a second session with the same request id", async () => {
          const { sessions } = await open();
          await sessions.create(session("a", { requestId: "same" }), {});
          await expect(sessions.create(session("b", { requestId: "same" }), {})).rejects.toThrow(/unique/i);
          expect(await sessions.get("b")).toBeUndefined();
        });

        it("keeps request ids per tenant: another tenant's same request id is its own session", async () => {
          const { sessions } = await open();
          await sessions.create(session("a", { requestId: "same", tenant: "acme" }), {});
          await sessions.create(session("b", { requestId: "same", tenant: "globex" }), {});
          expect((await sessions.getByRequestId("acme", "same"))?.id).toBe("a");
          expect((await sessions.getByRequestId("globex", "same"))?.id).toBe("b");
          expect((await sessions.get("b"))?.tenant).toBe("globex");
          const ids = async (tenant: string) =>
            (await sessions.list({ tenant, states: [], batchId: "", limit: 10, after: "" })).map((s) => s.id);
          expect([await ids("acme"), await ids("globex")]).toEqual([["a"], ["b"]]);
        });

        it("keeps the newest checkpoint with the session state, and a restart's reset forgets progress", async () => {
          const { sessions } = await open();
          const s = session("a");
          await sessions.create(s, { image: image([9]) });
          s.denoiseStep = 3;
          await sessions.saveWithCheckpoint(s, checkpoint(3));
          s.denoiseStep = 6;
          await sessions.saveWithCheckpoint(s, checkpoint(6));
          expect((await sessions.checkpoint("a"))?.step).toBe(6);
          expect((await sessions.checkpoint("a"))?.latents?.data[0]).toBe(6);
          expect((await sessions.get("a"))?.denoiseStep).toBe(6);
          await sessions.putInputs("a", { "step.generate.0": image([7]) });
          expect(Object.keys(await sessions.inputs("a")).sort()).toEqual(["image", "step.generate.0"]);
          await sessions.dropCheckpoint("a");
          expect(await sessions.checkpoint("a")).toBeUndefined();
          await sessions.saveWithCheckpoint(s, checkpoint(7));
          await sessions.resetProgress("a");
          expect(await sessions.checkpoint("a")).toBeUndefined();
          expect(Object.keys(await sessions.inputs("a"))).toEqual(["image"]);
        });

        it("deletes a session's inputs, checkpoint and artifact rows with it", async () => {
          const { sessions, artifacts } = await open();
          await sessions.create(session("a"), { image: image([1]) });
          await sessions.saveWithCheckpoint(session("a"), checkpoint(2));
          await artifacts.put(new Uint8Array([1, 2, 3]), {
            tenant: DEFAULT_TENANT,
            sessionId: "a",
            mediaType: "image/png",
            width: 1,
            height: 1,
            imageIndex: 0,
            seed: 1n,
          });
          expect(await sessions.delete("a")).toBe(true);
          expect(await sessions.delete("a")).toBe(false);
          const count = async (table: string) =>
            Number((await backend.query(`SELECT COUNT(*) AS n FROM ${table}`))[0]?.n);
          const tables = ["sessions", "session_inputs", "checkpoints", "artifacts"];
          expect(await Promise.all(tables.map(count))).toEqual([0, 0, 0, 0]);
        });

        it("lists finished sessions last changed before a time", async () => {
          const { sessions } = await open();
          for (const [id, state] of [
            ["done", SessionState.COMPLETED],
            ["failed", SessionState.FAILED],
            ["live", SessionState.RUNNING],
          ] as const) {
            const s = session(id);
            await sessions.create(s, {});
            s.state = state;
            await sessions.save(s);
          }
          await new Promise((r) => setTimeout(r, 5));
          expect(
            (await sessions.finishedBefore(Date.now())).map((s) => `${s.tenant}/${s.id}`).sort(),
          ).toEqual([`${DEFAULT_TENANT}/done`, `${DEFAULT_TENANT}/failed`]);
          expect(await sessions.finishedBefore(Date.now() - 60_000)).toEqual([]);
        });
      });

      describe("ArtifactStore", () => {
        it("stores bytes once under their sha256 and serves them back", async () => {
          const { sessions, artifacts } = await open();
          await sessions.create(session("a"), {});
          const bytes = new TextEncoder().encode("not really a png, but bytes");
          const artifact = await artifacts.put(bytes, meta("a"));
          expect(artifact.id).toMatch(/^[0-9a-f]{64}$/);
          expect(artifacts.pathOf(artifact.id)).toBe(
            join(artifactDir(), artifact.id.slice(0, 2), artifact.id),
          );
          expect(readFileSync(artifacts.pathOf(artifact.id))).toEqual(Buffer.from(bytes));
          expect(await artifacts.get(artifact.id, "another")).toBeUndefined();
          expect(await artifacts.get(artifact.id, DEFAULT_TENANT)).toMatchObject({
            sessionId: "a",
            sizeBytes: BigInt(bytes.length),
            seed: 7n,
          });
          const chunks: Buffer[] = [];
          for await (const chunk of artifacts.open(artifact.id, 5)) chunks.push(chunk);
          expect(chunks.length).toBeGreaterThan(1);
          expect(Buffer.concat(chunks)).toEqual(Buffer.from(bytes));
          // No temp file is left beside it.
          expect(artifactFiles().map((f) => f.name)).toEqual([artifact.id]);
        });

        it("keeps shared bytes until the last session that references them is deleted", async () => {
          const { sessions, artifacts } = await open();
          for (const id of ["a", "b"]) await sessions.create(session(id), {});
          const shared = new Uint8Array([1, 1, 1]);
          const own = new Uint8Array([2, 2, 2]);
          const first = await artifacts.put(shared, meta("a"));
          await artifacts.put(own, meta("a", 1));
          const second = await artifacts.put(shared, meta("b"));
          expect(second.id).toBe(first.id);
          expect(artifactFiles()).toHaveLength(2);
          expect((await artifacts.listBySession("a", DEFAULT_TENANT)).map((x) => x.imageIndex)).toEqual([
            0, 1,
          ]);

          const idsOfA = await artifacts.idsOfSession("a");
          await sessions.delete("a");
          expect(await artifacts.removeUnreferenced(idsOfA)).toBe(own.length);
          expect(existsSync(artifacts.pathOf(first.id))).toBe(true);
          expect(artifactFiles()).toHaveLength(1);

          const idsOfB = await artifacts.idsOfSession("b");
          await sessions.delete("b");
          expect(await artifacts.removeUnreferenced(idsOfB)).toBe(shared.length);
          expect(artifactFiles()).toHaveLength(0);
        });

        it("writes again a file no row references (a power cut may have left it part-written), not one a row does", async () => {
          const { sessions, artifacts } = await open();
          for (const id of ["a", "b"]) await sessions.create(session(id), {});
          const bytes = new Uint8Array([9, 8, 7, 6]);
          const { id } = await artifacts.put(bytes, meta("a"));
          const path = artifacts.pathOf(id);
          const idsOfA = await artifacts.idsOfSession("a");
          await sessions.delete("a");
          // Its row went, and the file with it; what an interrupted put could leave is in its place.
          await artifacts.removeUnreferenced(idsOfA);
          mkdirSync(dirname(path), { recursive: true });
          writeFileSync(path, bytes.subarray(0, 2));
          await artifacts.put(bytes, meta("b"));
          expect([...readFileSync(path)]).toEqual([...bytes]);
          // Referenced now: another put of the same bytes leaves the file alone.
          const inode = statSync(path).ino;
          await artifacts.put(bytes, meta("b", 1));
          expect(statSync(path).ino).toBe(inode);
          expect(artifactFiles().map((f) => f.name)).toEqual([id]);
        });

        it("removes the bytes a restarted session's new image replaced", async () => {
          const { sessions, artifacts } = await open();
          await sessions.create(session("a"), {});
          const before = await artifacts.put(new Uint8Array([1]), meta("a"));
          const after = await artifacts.put(new Uint8Array([2]), meta("a"));
          expect(existsSync(artifacts.pathOf(before.id))).toBe(false);
          expect((await artifacts.listBySession("a", DEFAULT_TENANT)).map((x) => x.id)).toEqual([after.id]);
        });

        it("removes one tenant's references to an artifact, and names the sessions they were in", async () => {
          const { sessions, artifacts } = await open();
          for (const [id, tenant] of [
            ["a1", "acme"],
            ["a2", "acme"],
            ["g1", "globex"],
          ] as const)
            await sessions.create(session(id, { tenant }), {});
          const bytes = new Uint8Array([1, 2, 3]);
          const { id } = await artifacts.put(bytes, meta("a1", 0, "acme"));
          await artifacts.put(bytes, meta("a2", 0, "acme"));
          await artifacts.put(bytes, meta("g1", 0, "globex"));
          expect(await artifacts.removeReferences(id, "initech")).toEqual([]);
          expect((await artifacts.removeReferences(id, "acme")).sort()).toEqual(["a1", "a2"]);
          expect(await artifacts.get(id, "acme")).toBeUndefined();
          expect(await artifacts.get(id, "globex")).toMatchObject({ sessionId: "g1" });
          expect(await artifacts.removeUnreferenced([id])).toBe(0);
          expect(await artifacts.removeReferences(id, "globex")).toEqual(["g1"]);
          expect(await artifacts.removeUnreferenced([id])).toBe(bytes.length);
        });
      });

      describe("WorkflowStore", () => {
        it("keeps every version, hides a deleted workflow's versions, and counts sessions per workflow", async () => {
          const { workflows } = await open();
          await workflows.insert(workflow("mine", "first"), 1);
          await workflows.insert(workflow("mine", "second"), 2);
          await workflows.insert(workflow("other", "x"), 1);
          // (id, version) is unique: a second writer of the same version is refused.
          await expect(workflows.insert(workflow("mine", "again"), 2)).rejects.toThrow();
          await workflows.markDeleted("other");
          expect(
            (await workflows.all()).map(
              (w) => `${w.definition.id}@${w.version}:${w.definition.name}:${w.deleted}`,
            ),
          ).toEqual(["mine@1:first:false", "mine@2:second:false", "other@1:x:true"]);
          expect((await workflows.all())[0]?.definition).toEqual(workflow("mine", "first"));
          await workflows.recordUse("mine");
          await workflows.recordUse("mine");
          await workflows.recordUse("txt2img");
          expect(await workflows.usage()).toEqual(
            new Map([
              ["mine", 2],
              ["txt2img", 1],
            ]),
          );
        });
      });

      describe("WorkflowCatalog", () => {
        it("finds on a miss what another replica on the same database made since it loaded", async () => {
          const a = new WorkflowCatalog([], (await open()).workflows);
          await a.load();
          const other = new WorkflowCatalog([], (await open()).workflows);
          await other.load();
          await a.create(workflow("mine", "first"));
          await a.update(workflow("mine", "second"));
          expect(() => other.get("mine")).toThrow(/no workflow/);
          expect((await other.resolve("mine", 1)).definition.name).toBe("first");
          expect((await other.resolve("mine")).definition.name).toBe("second");
          expect(other.get("mine").version).toBe(2);
          await expect(other.resolve("missing")).rejects.toThrow(/no workflow/);
        });
      });

      describe("StepTimingStore", () => {
        it("averages the newest measurements of a key, none for a key never measured", async () => {
          const { stepTimings } = await open();
          expect(await stepTimings.average("generate")).toBeUndefined();
          // Older ones beyond what a key keeps fall out of the average.
          for (let i = 0; i < STEP_TIMINGS_KEPT; i++) await stepTimings.record("generate", 100);
          for (let i = 0; i < STEP_TIMINGS_KEPT; i++) await stepTimings.record("generate", 2);
          await stepTimings.record("upscale", 0.5);
          expect(await stepTimings.average("generate")).toBe(2);
          expect(await stepTimings.average("upscale")).toBe(0.5);
          const rows = await backend.query("SELECT COUNT(*) AS n FROM step_timings WHERE key = 'generate'");
          expect(Number(rows[0]?.n)).toBe(STEP_TIMINGS_KEPT);
        });
      });

      describe("WebhookStore", () => {
        it("adds a delivery once, lists the earliest first, reschedules and removes", async () => {
          const { webhooks } = await open();
          const delivery = (id: string, nextAt: number) => ({
            id,
            tenant: "acme",
            url: "https://hooks.example/x",
            event: "session",
            body: `{"id":"${id}"}`,
            nextAt,
          });
          await webhooks.add(delivery("late", 2_000_000_000_000));
          await webhooks.add(delivery("soon", 1_000));
          await webhooks.add(delivery("soon", 5));
          expect(await webhooks.pending()).toEqual([
            { ...delivery("soon", 1_000), attempts: 0 },
            { ...delivery("late", 2_000_000_000_000), attempts: 0 },
          ]);
          await webhooks.retryLater("soon", 1, 3_000_000_000_000, "x".repeat(2_000));
          expect((await webhooks.pending(1)).map((d) => d.id)).toEqual(["late"]);
          const errors = await backend.query("SELECT last_error FROM webhook_deliveries WHERE id = 'soon'");
          expect(String(errors[0]?.last_error)).toHaveLength(500);
          // One claim of what was seen wins: another replica that saw the same row is refused.
          expect(await webhooks.claim("late", 2_000_000_000_000, 4_000_000_000_000)).toBe(true);
          expect(await webhooks.claim("late", 2_000_000_000_000, 4_000_000_000_000)).toBe(false);
          expect((await webhooks.pending()).map((d) => `${d.id}@${d.nextAt}`)).toEqual([
            "soon@3000000000000",
            "late@4000000000000",
          ]);
          await webhooks.remove("late");
          expect(await webhooks.pending()).toEqual([{ ...delivery("soon", 3_000_000_000_000), attempts: 1 }]);
        });
      });

      describe("a reopened database", () => {
        it("has every session, input, checkpoint, batch and artifact, at the latest schema version", async () => {
          let stores = await open();
          const s = session("a", { requestId: "r1" });
          await stores.sessions.create(s, { image: image([5, 6]) });
          s.state = SessionState.PAUSED;
          await stores.sessions.saveWithCheckpoint(s, checkpoint(4));
          const artifact = await stores.artifacts.put(new Uint8Array([3, 4]), meta("a"));
          await stores.batches.create(
            create(BatchSchema, {
              id: "b1",
              requestId: "batch-req",
              workflowId: "txt2img",
              state: BatchState.RUNNING,
              items: [{ index: 0, sessionId: "a" }],
            }),
          );
          await stores.close();
          opened = [];

          stores = await open();
          const versions = await backend.query("SELECT version FROM schema_migrations ORDER BY version");
          expect(versions.map((r) => Number(r.version))).toEqual(
            (backend === sqliteBackend ? MIGRATIONS : PG_MIGRATIONS).map((_, i) => i + 1),
          );
          expect((await stores.sessions.get("a"))?.state).toBe(SessionState.PAUSED);
          expect((await stores.sessions.getByRequestId(DEFAULT_TENANT, "r1"))?.id).toBe("a");
          expect((await stores.sessions.checkpoint("a"))?.step).toBe(4);
          expect(Object.keys(await stores.sessions.inputs("a"))).toEqual(["image"]);
          expect((await stores.artifacts.get(artifact.id, DEFAULT_TENANT))?.sessionId).toBe("a");
          expect([...(await stores.artifacts.read(artifact.id))]).toEqual([3, 4]);
          expect(
            (await stores.batches.getByRequestId(DEFAULT_TENANT, "batch-req"))?.items[0]?.sessionId,
          ).toBe("a");
          expect((await stores.batches.list(DEFAULT_TENANT, "", 10)).map((b) => b.id)).toEqual(["b1"]);
          expect(await stores.batches.list("another", "", 10)).toEqual([]);
          expect(await stores.batches.delete("b1")).toBe(true);
          expect(await stores.batches.get("b1")).toBeUndefined();
        });
      });
    },
  );
}

describe("a reopened SQLite database", () => {
  it("from before tenants: every row is the default tenant's, and nothing that referenced a rebuilt table is lost", async () => {
    // The schema as the two migrations before tenants left it, with a row in every table.
    mkdirSync(dirname(dbPath()), { recursive: true });
    const old = new Database(dbPath());
    old.exec((MIGRATIONS[0] ?? "") + (MIGRATIONS[1] ?? ""));
    old.pragma("user_version = 2");
    const s = session("a", { requestId: "r1" });
    old
      .prepare(
        "INSERT INTO sessions (id, state, request_id, priority, created_at, updated_at, data) VALUES (?, ?, ?, 0, 1, 1, ?)",
      )
      .run("a", SessionState.COMPLETED, "r1", Buffer.from(toBinary(SessionSchema, s)));
    old.prepare("INSERT INTO session_inputs VALUES ('a', 'image', x'00')").run();
    old.prepare("INSERT INTO checkpoints VALUES ('a', 3, x'00')").run();
    old.prepare("INSERT INTO artifacts VALUES ('abc', 'a', 0, 1, x'')").run();
    old
      .prepare("INSERT INTO batches VALUES ('b1', 'batch-req', 1, ?)")
      .run(Buffer.from(toBinary(BatchSchema, create(BatchSchema, { id: "b1" }))));
    old.close();

    const stores = await openOn(sqliteBackend);
    const db = new Database(dbPath());
    onTestFinished(() => {
      db.close();
    });
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect((await stores.sessions.get("a"))?.tenant).toBe(DEFAULT_TENANT);
    expect((await stores.sessions.getByRequestId(DEFAULT_TENANT, "r1"))?.id).toBe("a");
    expect(db.prepare("SELECT COUNT(*) AS n FROM session_inputs").get()).toEqual({ n: 1 });
    expect(db.prepare("SELECT COUNT(*) AS n FROM checkpoints").get()).toEqual({ n: 1 });
    expect(db.prepare("SELECT tenant FROM artifacts").all()).toEqual([{ tenant: DEFAULT_TENANT }]);
    expect((await stores.batches.get("b1"))?.tenant).toBe(DEFAULT_TENANT);
    // The cascade still holds on the rebuilt table.
    expect(await stores.sessions.delete("a")).toBe(true);
    expect(db.prepare("SELECT COUNT(*) AS n FROM session_inputs").get()).toEqual({ n: 0 });
    expect(db.prepare("SELECT COUNT(*) AS n FROM artifacts").get()).toEqual({ n: 0 });
  });

  it("is in WAL mode with foreign keys on, syncing at group commits only", async () => {
    const db: Db = openDatabase(dbPath());
    onTestFinished(() => {
      db.close();
    });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("synchronous", { simple: true })).toBe(1);
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
  });
});
