import { DEFAULT_TENANT } from "@dmesh/runtime/tenants";

/**
 * PostgreSQL's schema changes, numbered as SQLite's (database.ts): version N is the same schema in both.
 * Applied once each, recorded in schema_migrations; applied ones never change.
 */
export const PG_MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: "sessions, inputs, checkpoints, batches, artifacts",
    sql: `CREATE TABLE sessions (
       id TEXT PRIMARY KEY,
       state INTEGER NOT NULL,
       request_id TEXT UNIQUE,
       batch_id TEXT,
       priority INTEGER NOT NULL DEFAULT 0,
       created_at BIGINT NOT NULL,
       updated_at BIGINT NOT NULL,
       data BYTEA NOT NULL
     );
     CREATE INDEX sessions_state ON sessions(state, priority DESC, created_at);
     CREATE INDEX sessions_batch ON sessions(batch_id);
     CREATE TABLE session_inputs (
       session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
       name TEXT NOT NULL,
       data BYTEA NOT NULL,
       PRIMARY KEY (session_id, name)
     );
     CREATE TABLE checkpoints (
       session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
       step INTEGER NOT NULL,
       data BYTEA NOT NULL
     );
     CREATE TABLE batches (
       id TEXT PRIMARY KEY,
       request_id TEXT UNIQUE,
       created_at BIGINT NOT NULL,
       data BYTEA NOT NULL
     );
     CREATE TABLE artifacts (
       id TEXT NOT NULL,
       session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
       image_index INTEGER NOT NULL,
       created_at BIGINT NOT NULL,
       data BYTEA NOT NULL,
       PRIMARY KEY (session_id, image_index)
     );
     CREATE INDEX artifacts_id ON artifacts(id);`,
  },
  // SQLite's durability marker; a server database syncs its own log.
  { version: 2, name: "durability marker (SQLite only)", sql: "" },
  {
    version: 3,
    name: "tenants",
    sql: `ALTER TABLE sessions ADD COLUMN tenant TEXT NOT NULL DEFAULT '${DEFAULT_TENANT}';
     ALTER TABLE sessions ALTER COLUMN tenant DROP DEFAULT;
     ALTER TABLE sessions DROP CONSTRAINT sessions_request_id_key;
     ALTER TABLE sessions ADD CONSTRAINT sessions_tenant_request_id_key UNIQUE (tenant, request_id);
     CREATE INDEX sessions_tenant ON sessions(tenant, id);
     ALTER TABLE batches ADD COLUMN tenant TEXT NOT NULL DEFAULT '${DEFAULT_TENANT}';
     ALTER TABLE batches ALTER COLUMN tenant DROP DEFAULT;
     ALTER TABLE batches DROP CONSTRAINT batches_request_id_key;
     ALTER TABLE batches ADD CONSTRAINT batches_tenant_request_id_key UNIQUE (tenant, request_id);
     CREATE INDEX batches_tenant ON batches(tenant, id);
     ALTER TABLE artifacts ADD COLUMN tenant TEXT NOT NULL DEFAULT '${DEFAULT_TENANT}';
     CREATE INDEX artifacts_id_tenant ON artifacts(id, tenant);`,
  },
  {
    version: 4,
    name: "workflows: definitions, usage, step timings, webhook deliveries",
    sql: `CREATE TABLE workflows (
       id TEXT NOT NULL,
       version INTEGER NOT NULL,
       created_at BIGINT NOT NULL,
       deleted BOOLEAN NOT NULL DEFAULT FALSE,
       definition TEXT NOT NULL,
       PRIMARY KEY (id, version)
     );
     CREATE TABLE workflow_usage (
       id TEXT PRIMARY KEY,
       sessions BIGINT NOT NULL
     );
     CREATE TABLE step_timings (
       key TEXT NOT NULL,
       recorded_at BIGINT NOT NULL,
       seconds DOUBLE PRECISION NOT NULL
     );
     CREATE INDEX step_timings_key ON step_timings(key, recorded_at);
     CREATE TABLE webhook_deliveries (
       id TEXT PRIMARY KEY,
       tenant TEXT NOT NULL,
       url TEXT NOT NULL,
       body TEXT NOT NULL,
       attempts INTEGER NOT NULL DEFAULT 0,
       next_at BIGINT NOT NULL,
       last_error TEXT NOT NULL DEFAULT ''
     );`,
  },
  {
    version: 5,
    name: "replicas: session owners, lease epochs, replica leases",
    sql: `ALTER TABLE sessions ADD COLUMN owner TEXT;
     ALTER TABLE sessions ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
     CREATE INDEX sessions_owner ON sessions(owner);
     CREATE TABLE replicas (
       id TEXT PRIMARY KEY,
       started_at BIGINT NOT NULL,
       lease_until TIMESTAMPTZ NOT NULL
     );`,
  },
  {
    version: 6,
    name: "batch feeders: the one replica that feeds each running batch",
    sql: `CREATE TABLE batch_feeders (
       batch_id TEXT PRIMARY KEY REFERENCES batches(id) ON DELETE CASCADE,
       replica TEXT NOT NULL
     );`,
  },
];
