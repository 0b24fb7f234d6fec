import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DEFAULT_TENANT } from "@dmesh/runtime/tenants";
import Database from "better-sqlite3";

export type Db = Database.Database;

/**
 * Ordered schema changes, numbered from 1 (PostgreSQL's, in postgres/pg-migrations.ts, carry the same
 * numbers); a database records those applied in schema_migrations and gets the rest on open.
 */
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
  // Replicas on a server database own sessions under a lease; the columns exist here too (one replica, always
  // the owner) so that version 5 is the same schema in both.
  `ALTER TABLE sessions ADD COLUMN owner TEXT;
   ALTER TABLE sessions ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX sessions_owner ON sessions(owner);
   CREATE TABLE replicas (
     id TEXT PRIMARY KEY,
     started_at INTEGER NOT NULL,
     lease_until INTEGER NOT NULL
   );`,
  // The replica feeding each running batch (one feeder at a time on a server database; unused here).
  `CREATE TABLE batch_feeders (
     batch_id TEXT PRIMARY KEY REFERENCES batches(id) ON DELETE CASCADE,
     replica TEXT NOT NULL
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
  // Databases from before schema_migrations recorded their version in user_version only.
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
  );
  const applied = db.pragma("user_version", { simple: true }) as number;
  const record = db.prepare("INSERT OR IGNORE INTO schema_migrations (version, applied_at) VALUES (?, ?)");
  for (let v = 1; v <= applied; v++) record.run(v, Date.now());
  if (applied >= MIGRATIONS.length) return;
  db.pragma("foreign_keys = OFF");
  try {
    for (let i = applied; i < MIGRATIONS.length; i++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[i] ?? "");
        const broken = db.pragma("foreign_key_check") as unknown[];
        if (broken.length > 0) throw new Error(`migration ${i + 1} left ${broken.length} broken references`);
        record.run(i + 1, Date.now());
        db.pragma(`user_version = ${i + 1}`);
      })();
    }
  } finally {
    db.pragma("foreign_keys = ON");
  }
}
