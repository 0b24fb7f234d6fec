import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DEFAULT_TENANT } from "@dmesh/runtime/tenants";
import Database from "better-sqlite3";

export type Db = Database.Database;

/** Ordered schema changes; a database records how many it has applied and gets the rest on open. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     state INTEGER NOT NULL,
     request_id TEXT UNIQUE,
     batch_id TEXT,
     priority INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     data BLOB NOT NULL
   );
   CREATE INDEX sessions_state ON sessions(state, priority DESC, created_at);
   CREATE INDEX sessions_batch ON sessions(batch_id);
   CREATE TABLE session_inputs (
     session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
     name TEXT NOT NULL,
     data BLOB NOT NULL,
     PRIMARY KEY (session_id, name)
   );
   CREATE TABLE checkpoints (
     session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
     step INTEGER NOT NULL,
     data BLOB NOT NULL
   );
   CREATE TABLE batches (
     id TEXT PRIMARY KEY,
     request_id TEXT UNIQUE,
     created_at INTEGER NOT NULL,
     data BLOB NOT NULL
   );
   CREATE TABLE artifacts (
     id TEXT NOT NULL,
     session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
     image_index INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     data BLOB NOT NULL,
     PRIMARY KEY (session_id, image_index)
   );
   CREATE INDEX artifacts_id ON artifacts(id);`,
  // A row group commits once updated with synchronous=FULL to force a sync; unused since GroupCommit syncs the
  // WAL file itself, and kept because applied migrations never change.
  `CREATE TABLE durability_marker (commits INTEGER NOT NULL);
   INSERT INTO durability_marker VALUES (0);`,
  // Tenants: every session, batch and artifact row names its owner (rows from before belong to the default
  // tenant), and a request id is unique per tenant, not across them. SQLite cannot change a UNIQUE
  // constraint in place, so sessions and batches are rebuilt (foreign keys are off while migrating).
  `CREATE TABLE sessions_new (
     id TEXT PRIMARY KEY,
     tenant TEXT NOT NULL,
     state INTEGER NOT NULL,
     request_id TEXT,
     batch_id TEXT,
     priority INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     data BLOB NOT NULL,
     UNIQUE (tenant, request_id)
   );
   INSERT INTO sessions_new
     SELECT id, '${DEFAULT_TENANT}', state, request_id, batch_id, priority, created_at, updated_at, data FROM sessions;
   DROP TABLE sessions;
   ALTER TABLE sessions_new RENAME TO sessions;
   CREATE INDEX sessions_state ON sessions(state, priority DESC, created_at);
   CREATE INDEX sessions_batch ON sessions(batch_id);
   CREATE INDEX sessions_tenant ON sessions(tenant, id);
   CREATE TABLE batches_new (
     id TEXT PRIMARY KEY,
     tenant TEXT NOT NULL,
     request_id TEXT,
     created_at INTEGER NOT NULL,
     data BLOB NOT NULL,
     UNIQUE (tenant, request_id)
   );
   INSERT INTO batches_new SELECT id, '${DEFAULT_TENANT}', request_id, created_at, data FROM batches;
   DROP TABLE batches;
   ALTER TABLE batches_new RENAME TO batches;
   CREATE INDEX batches_tenant ON batches(tenant, id);
   ALTER TABLE artifacts ADD COLUMN tenant TEXT NOT NULL DEFAULT '${DEFAULT_TENANT}';
   CREATE INDEX artifacts_id_tenant ON artifacts(id, tenant);`,
  // Workflows as data: every version of every user-defined workflow (JSON definitions; a deleted workflow's
  // versions stay for the sessions that still run them), how many sessions each workflow ran, measured step
  // timings (by step kind, model, size, steps and scheduler) for estimates, and webhook deliveries not yet
  // made (a restart loses none).
  `CREATE TABLE workflows (
     id TEXT NOT NULL,
     version INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     deleted INTEGER NOT NULL DEFAULT 0,
     definition TEXT NOT NULL,
     PRIMARY KEY (id, version)
   );
   CREATE TABLE workflow_usage (
     id TEXT PRIMARY KEY,
     sessions INTEGER NOT NULL
   );
   CREATE TABLE step_timings (
     key TEXT NOT NULL,
     recorded_at INTEGER NOT NULL,
     seconds REAL NOT NULL
   );
   CREATE INDEX step_timings_key ON step_timings(key, recorded_at);
   CREATE TABLE webhook_deliveries (
     id TEXT PRIMARY KEY,
     tenant TEXT NOT NULL,
     url TEXT NOT NULL,
     body TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_at INTEGER NOT NULL,
     last_error TEXT NOT NULL DEFAULT ''
   );`,
];

/**
 * Opens (creating if needed) the orchestrator's SQLite file in WAL mode. A transaction that returned survives
 * a SIGKILL; what is acknowledged to a client also survives a power cut, through GroupCommit.
 */
export function openDatabase(path: string): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  // Writes reach the WAL at once and the disk at the next group commit (see GroupCommit).
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  migrate(db);
  db.pragma("foreign_keys = ON");
  return db;
}

/**
 * Applies the migrations not yet applied, each in its own transaction, with foreign keys off (a rebuilt table
 * is dropped and replaced: with them on, dropping it would delete the rows that reference it) and checked
 * before the migration commits.
 */
function migrate(db: Db): void {
  const applied = db.pragma("user_version", { simple: true }) as number;
  if (applied >= MIGRATIONS.length) return;
  db.pragma("foreign_keys = OFF");
  try {
    for (let i = applied; i < MIGRATIONS.length; i++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[i] ?? "");
        const broken = db.pragma("foreign_key_check") as unknown[];
        if (broken.length > 0) throw new Error(`migration ${i + 1} left ${broken.length} broken references`);
        db.pragma(`user_version = ${i + 1}`);
      })();
    }
  } finally {
    db.pragma("foreign_keys = ON");
  }
}
