import { join } from "node:path";
import type { Logger } from "@dmesh/runtime/logger";
import { ArtifactStore } from "./artifact-store.js";
import type { BatchStore } from "./batch-store.js";
import { openDatabase } from "./database.js";
import { GroupCommit } from "./group-commit.js";
import { PgArtifactIndex } from "./postgres/pg-artifact-index.js";
import { PgBatchStore } from "./postgres/pg-batch-store.js";
import { PgDatabase } from "./postgres/pg-database.js";
import { PgSessionStore } from "./postgres/pg-session-store.js";
import { PgStepTimingStore } from "./postgres/pg-step-timing-store.js";
import { PgWebhookStore } from "./postgres/pg-webhook-store.js";
import { PgWorkflowStore } from "./postgres/pg-workflow-store.js";
import type { SessionStore } from "./session-store.js";
import { SqliteArtifactIndex } from "./sqlite-artifact-index.js";
import { SqliteBatchStore } from "./sqlite-batch-store.js";
import { SqliteSessionStore } from "./sqlite-session-store.js";
import { SqliteStepTimingStore } from "./sqlite-step-timing-store.js";
import { SqliteWebhookStore } from "./sqlite-webhook-store.js";
import { SqliteWorkflowStore } from "./sqlite-workflow-store.js";
import type { StepTimingStore } from "./step-timing-store.js";
import type { WebhookStore } from "./webhook-store.js";
import type { WorkflowStore } from "./workflow-store.js";

/**
 * The orchestrator's state: sessions, batches, artifacts, workflows, step timings and webhook deliveries, and
 * when what was written is durable.
 */
export interface Stores {
  readonly kind: "sqlite" | "postgres";
  readonly sessions: SessionStore;
  readonly batches: BatchStore;
  readonly artifacts: ArtifactStore;
  readonly workflows: WorkflowStore;
  readonly stepTimings: StepTimingStore;
  readonly webhooks: WebhookStore;
  /** What is told waits for it (see GroupCommit): on disk, for either database. */
  readonly commits: GroupCommit;
  /** The PostgreSQL database, for the replica primitives; undefined on SQLite. */
  readonly postgres: PgDatabase | undefined;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** postgres://… for PostgreSQL; empty for SQLite in `dataDir`. */
  databaseUrl: string;
  dataDir: string;
  /** This replica's id, owner of the sessions it creates (PostgreSQL). */
  replicaId?: string;
  /** How long a replica's sessions stay its own without a heartbeat (PostgreSQL). */
  leaseMs?: number;
}

/** Opens SQLite in `dataDir`, or PostgreSQL at `databaseUrl`; migrates either to the latest schema. */
export async function openStores(options: StoreOptions, logger: Logger): Promise<Stores> {
  const artifactDir = join(options.dataDir, "artifacts");
  if (/^postgres(ql)?:\/\//.test(options.databaseUrl)) {
    const db = await PgDatabase.open(
      options.databaseUrl,
      logger,
      20,
      Math.max(200, Math.floor((options.leaseMs ?? 10_000) / 2)),
    );
    const commits = new GroupCommit(undefined, logger);
    return {
      kind: "postgres",
      sessions: new PgSessionStore(db, options.replicaId),
      batches: new PgBatchStore(db),
      artifacts: new ArtifactStore(new PgArtifactIndex(db), artifactDir),
      workflows: new PgWorkflowStore(db),
      stepTimings: new PgStepTimingStore(db),
      webhooks: new PgWebhookStore(db),
      commits,
      postgres: db,
      async close() {
        commits.close();
        await db.close();
      },
    };
  }
  if (options.databaseUrl)
    throw new Error(`DATABASE_URL must start with postgres:// or postgresql://, or be empty for SQLite`);
  const db = openDatabase(join(options.dataDir, "dmesh.sqlite"));
  const commits = new GroupCommit(db, logger);
  return {
    kind: "sqlite",
    sessions: new SqliteSessionStore(db),
    batches: new SqliteBatchStore(db),
    artifacts: new ArtifactStore(new SqliteArtifactIndex(db), artifactDir),
    workflows: new SqliteWorkflowStore(db),
    stepTimings: new SqliteStepTimingStore(db),
    webhooks: new SqliteWebhookStore(db),
    commits,
    postgres: undefined,
    async close() {
      commits.close();
      db.close();
    },
  };
}
