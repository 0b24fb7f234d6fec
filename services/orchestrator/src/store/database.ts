import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

export type Db = Database.Database;

/** Ordered schema changes; a database records how many it has applied and gets the rest on open. */
const MIGRATIONS: string[] = [
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
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  const applied = db.pragma("user_version", { simple: true }) as number;
  for (let i = applied; i < MIGRATIONS.length; i++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[i] ?? "");
      db.pragma(`user_version = ${i + 1}`);
    })();
  }
}
