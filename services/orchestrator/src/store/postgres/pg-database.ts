import type { Logger } from "@dmesh/runtime/logger";
import pg from "pg";
import { PG_MIGRATIONS } from "./pg-migrations.js";

/** A connection that runs statements: the pool itself, or one client inside a transaction. */
export type Queryable = Pick<pg.PoolClient, "query">;

// Taken while migrating, so that replicas starting together apply each migration once.
const MIGRATION_LOCK = 0x646d657368; // "dmesh"

/**
 * The orchestrator's PostgreSQL database through node-postgres: a pool, and writes ordered per key (a
 * session's, a batch's). Writes of one key run one after another in call order; writes of different keys
 * run at once on different connections, so that the server commits them together (its own group commit).
 * A read of a key waits for the writes of that key called before it: a caller reads what it wrote.
 */
export class PgDatabase {
  readonly pool: pg.Pool;
  private readonly tails = new Map<string, Promise<void>>();

  private constructor(url: string, logger: Logger, max: number, idleInTransactionMs: number) {
    this.pool = new pg.Pool({
      connectionString: url,
      max,
      application_name: "dmesh-orchestrator",
      // A replica frozen inside a transaction would hold its rows' locks, and claims skip locked rows: the
      // server ends such a transaction (and its connection) well within the lease, so that its sessions can
      // be adopted, and the frozen replica's commit fails when it wakes.
      options: `-c idle_in_transaction_session_timeout=${idleInTransactionMs}`,
    });
    // An idle client's connection dropping is reported here; the pool replaces it on the next use.
    this.pool.on("error", (err) => logger.warn({ err: String(err) }, "postgres connection lost"));
  }

  /** Connects and brings the schema up to date. */
  static async open(url: string, logger: Logger, max = 20, idleInTransactionMs = 5_000): Promise<PgDatabase> {
    const db = new PgDatabase(url, logger, max, idleInTransactionMs);
    try {
      await db.migrate();
    } catch (err) {
      await db.pool.end();
      throw err;
    }
    return db;
  }

  /** Runs `work` once the earlier writes of `key` are done (failed ones included). */
  write<T>(key: string, work: (q: Queryable) => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const done = before.then(() => work(this.pool));
    const tail = done.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return done;
  }

  /** `write`, in one transaction on one connection: rolled back when `work` throws. */
  transaction<T>(key: string, work: (q: Queryable) => Promise<T>): Promise<T> {
    return this.write(key, (pool) => inTransaction(pool as pg.Pool, work));
  }

  /** A read that sees the writes of `keys` called before it (of every key with "all"). */
  async read<R extends pg.QueryResultRow>(
    keys: string[] | "all",
    sql: string,
    params: unknown[] = [],
  ): Promise<R[]> {
    const tails = keys === "all" ? [...this.tails.values()] : keys.map((k) => this.tails.get(k));
    const pending = tails.filter((t) => t !== undefined);
    if (pending.length > 0) await Promise.all(pending);
    return (await this.pool.query<R>(sql, params)).rows;
  }

  /** Waits for the writes under way, then closes every connection. */
  async close(): Promise<void> {
    await Promise.all([...this.tails.values()]);
    await this.pool.end();
  }

  private async migrate(): Promise<void> {
    await inTransaction(this.pool, async (q) => {
      await q.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      await q.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version INTEGER PRIMARY KEY,
           name TEXT NOT NULL,
           applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )`,
      );
      const { rows } = await q.query<{ version: number }>("SELECT version FROM schema_migrations");
      const applied = new Set(rows.map((r) => r.version));
      for (const m of PG_MIGRATIONS) {
        if (applied.has(m.version)) continue;
        if (m.sql) await q.query(m.sql);
        await q.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
      }
    });
  }
}

/** BEGIN, `work`, COMMIT on one client of the pool; ROLLBACK when `work` throws. */
export async function inTransaction<T>(pool: pg.Pool, work: (q: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: unknown;
  // The server may end the connection meanwhile (idle_in_transaction_session_timeout after this replica was
  // frozen): the query fails, and the client is dropped instead of returned.
  const onError = (err: Error) => {
    broken = err;
  };
  client.on("error", onError);
  try {
    await client.query("BEGIN");
    const result = await work(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch((e: unknown) => {
      broken = e;
    });
    throw err;
  } finally {
    client.off("error", onError);
    // A client whose rollback failed has a broken connection: the pool drops it.
    client.release(broken instanceof Error ? broken : undefined);
  }
}
