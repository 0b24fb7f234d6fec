import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import {
  type SessionEvent,
  SessionEventKind,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { inferenceSettings, startInference } from "@dmesh/inference";
import { postprocessSettings, startPostprocess } from "@dmesh/postprocess";
import { createLogger, DEFAULT_TENANT, loadConfig, type RunningService } from "@dmesh/runtime";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ReplicaPool } from "../src/clients/replica-pool.js";
import { SessionEvents } from "../src/sessions/session-events.js";
import { SessionManager } from "../src/sessions/session-manager.js";
import { ArtifactStore } from "../src/store/artifact-store.js";
import { type Db, openDatabase } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";
import type { SessionStore } from "../src/store/session-store.js";
import { SqliteArtifactIndex } from "../src/store/sqlite-artifact-index.js";
import { SqliteSessionStore } from "../src/store/sqlite-session-store.js";
import { BUILTIN_WORKFLOWS } from "../src/workflows/builtin-workflows.js";
import { WorkflowCatalog } from "../src/workflows/workflow-catalog.js";

// A session manager over a real SQLite file, a real inference service (the tiny model) and a real
// postprocess service, in this process.
const logger = createLogger("test", "silent");
let dir: string;
let inference: RunningService;
let postprocess: RunningService;
let db: Db;
let store: SessionStore;
let artifacts: ArtifactStore;
let events: SessionEvents;
let manager: SessionManager;
let pools: Pick<ReplicaPool<typeof InferenceService>, "close">[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-session-commits-"));
  await ensureTinyModel(join(dir, "models", "tiny-sdxl"));
  inference = await startInference(
    loadConfig(
      inferenceSettings,
      { PORT: "0", MODELS_DIR: join(dir, "models"), PRELOAD_DEFAULT_MODEL: "true" },
      [],
    ),
    logger,
  );
  postprocess = await startPostprocess(loadConfig(postprocessSettings, { PORT: "0" }, []), logger);
  const deadline = Date.now() + 30_000;
  while (!inference.health.ready && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  db = openDatabase(join(dir, "state", "dmesh.sqlite"));
  store = new SqliteSessionStore(db);
  artifacts = new ArtifactStore(new SqliteArtifactIndex(db), join(dir, "artifacts"));
  events = new SessionEvents();
  const inferencePool = new ReplicaPool("inference", InferenceService, [inference.address], logger, 1 << 24);
  const postprocessPool = new ReplicaPool(
    "postprocess",
    PostprocessService,
    [postprocess.address],
    logger,
    1 << 24,
  );
  pools = [inferencePool, postprocessPool];
  manager = new SessionManager(
    {
      store,
      artifacts,
      inference: inferencePool,
      postprocess: postprocessPool,
      logger,
      checkpointIntervalSteps: 1,
      maxAttempts: 1,
      retryBackoffMs: 10,
      callTimeoutMs: 30_000,
      streamIdleTimeoutMs: 30_000,
    },
    events,
    new GroupCommit(db, logger),
    new WorkflowCatalog(BUILTIN_WORKFLOWS),
    { maxConcurrent: 2, maxQueued: 10 },
    logger,
  );
}, 60_000);
afterAll(async () => {
  await manager?.close();
  for (const pool of pools) pool.close();
  db?.close();
  await Promise.all([inference?.close(), postprocess?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe("a session's commits", () => {
  it("store and tell each turn's state changes once, in order, and what is told last is on disk", async () => {
    const told: SessionEvent[] = [];
    events.onStateChange((event) => told.push(event));
    const { session } = await manager.submit({
      tenant: DEFAULT_TENANT,
      workflowId: "txt2img",
      spec: create(GenerationSpecSchema, {
        conditioning: { prompt: "a lighthouse" },
        size: { width: 64, height: 64 },
        scheduler: { steps: 2 },
        params: { seed: 7n },
      }),
      images: {},
      requestId: "",
      priority: 0,
    });
    await vi.waitFor(() => expect(told.at(-1)?.session?.state).toBe(SessionState.COMPLETED), {
      timeout: 30_000,
    });
    // RUNNING, its first step and the replica that took it were one turn: one event, not three.
    expect(
      told.map(({ kind, session: s }) =>
        [SessionEventKind[kind], SessionState[s?.state ?? 0], s?.currentStep, s?.worker].join(" "),
      ),
    ).toEqual([
      "STATE QUEUED  ",
      `STATE RUNNING generate ${inference.address}`,
      `STATE RUNNING encode ${inference.address}`,
      `ARTIFACT RUNNING encode ${inference.address}`,
      `STATE COMPLETED encode ${inference.address}`,
    ]);
    const sequences = told.map((e) => e.session?.sequence ?? 0n);
    expect(sequences).toEqual([...new Set(sequences)].sort((a, b) => (a < b ? -1 : 1)));

    const stored = await store.get(session.id);
    expect(stored?.state).toBe(SessionState.COMPLETED);
    expect(stored?.sequence).toBe(told.at(-1)?.session?.sequence);
    const [artifactId] = stored?.artifactIds ?? [];
    expect(artifactId).toBe(told.find((e) => e.kind === SessionEventKind.ARTIFACT)?.artifactId);
    const bytes = readFileSync(artifacts.pathOf(artifactId ?? ""));
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(artifactId);
  }, 60_000);
});
