import { type Session, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { sessionOf } from "../session-store.js";
import type { PgDatabase } from "./pg-database.js";
import type { PgSessionStore } from "./pg-session-store.js";

/** A session this replica now owns, and the lease epoch its writes of it carry. */
export interface Claimed {
  session: Session;
  epoch: number;
}

/** Sessions a replica runs or will run: the ones another replica adopts when their owner dies. */
const UNFINISHED = [SessionState.QUEUED, SessionState.RUNNING];

/**
 * Several orchestrator replicas on one PostgreSQL database. Each holds a lease (its row in `replicas`,
 * renewed by `heartbeat`, timed by the server's clock so that the replicas' clocks need not agree) and owns
 * sessions (`sessions.owner`). A session whose owner's lease has run out is claimed by another replica with
 * `SELECT … FOR UPDATE SKIP LOCKED` (two replicas never claim the same one), which bumps its lease epoch: the
 * old owner's writes of it carry the old epoch and are refused (PgSessionStore's FencedError), so a replica
 * that was frozen and revives cannot overwrite the new owner.
 */
export class ReplicaLeases {
  constructor(
    private readonly db: PgDatabase,
    readonly replicaId: string,
    private readonly leaseMs: number,
    private readonly sessions: PgSessionStore,
  ) {}

  /**
   * Takes or renews this replica's lease for `leaseMs` from now. Answers the sessions it thought it owned
   * that another replica has adopted meanwhile (its lease ran out while it was stopped or cut off): it must
   * stop running them.
   */
  async heartbeat(): Promise<{ lost: string[] }> {
    await this.db.pool.query(
      `INSERT INTO replicas (id, started_at, lease_until) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
       ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until`,
      [this.replicaId, Date.now(), this.leaseMs],
    );
    const owned = [...this.sessions.owned()];
    if (owned.length === 0) return { lost: [] };
    const { rows } = await this.db.pool.query<{ id: string; owner: string | null; lease_epoch: string }>(
      "SELECT id, owner, lease_epoch FROM sessions WHERE id = ANY($1::text[])",
      [owned.map(([id]) => id)],
    );
    const now = new Map(rows.map((r) => [r.id, r]));
    const lost: string[] = [];
    for (const [id, epoch] of owned) {
      const row = now.get(id);
      if (!row) continue; // deleted: nothing to fence
      if (row.owner !== this.replicaId || Number(row.lease_epoch) !== epoch) {
        this.sessions.markLost(id);
        lost.push(id);
      }
    }
    return { lost };
  }

  /**
   * Claims up to `limit` unfinished sessions that no live replica owns (none, or one whose lease ran out),
   * highest priority and oldest first. Nothing while this replica's own lease has run out.
   */
  async claim(limit: number): Promise<Claimed[]> {
    const { rows } = await this.db.pool.query<{
      tenant: string;
      data: Buffer;
      id: string;
      lease_epoch: string;
    }>(
      // The owner test is a subquery, not a join, and is repeated in the UPDATE: when another replica claims a
      // row between this statement's snapshot and its lock, PostgreSQL re-checks the conditions on the row as
      // that claim left it, and a subquery is evaluated again there (a joined row would not be looked up again).
      `WITH claimable AS (
         SELECT s.id FROM sessions s
         WHERE s.state = ANY($2::int[])
           AND (s.owner IS NULL
                OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = s.owner AND r.lease_until > now()))
           AND EXISTS (SELECT 1 FROM replicas me WHERE me.id = $1 AND me.lease_until > now())
         ORDER BY s.priority DESC, s.created_at, s.id
         LIMIT $3
         FOR UPDATE OF s SKIP LOCKED
       )
       UPDATE sessions s SET owner = $1, lease_epoch = s.lease_epoch + 1
       FROM claimable c
       WHERE s.id = c.id
         AND (s.owner IS NULL
              OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = s.owner AND r.lease_until > now()))
       RETURNING s.id, s.tenant, s.data, s.lease_epoch`,
      [this.replicaId, UNFINISHED, limit],
    );
    return rows.map((r) => {
      const epoch = Number(r.lease_epoch);
      this.sessions.own(r.id, epoch);
      return { session: sessionOf(r) as Session, epoch };
    });
  }

  /**
   * Takes one session over: one that no live replica queues or runs (paused, finished, or its owner's lease
   * over). False when another live replica owns it and it is queued or running, or this replica's lease is
   * over.
   */
  async take(id: string): Promise<boolean> {
    const { rows } = await this.db.pool.query<{ lease_epoch: string }>(
      `UPDATE sessions s SET owner = $1, lease_epoch = s.lease_epoch + 1
       WHERE s.id = $2
         AND EXISTS (SELECT 1 FROM replicas me WHERE me.id = $1 AND me.lease_until > now())
         AND (s.state <> ALL($3::int[]) OR s.owner IS NULL OR s.owner = $1
              OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = s.owner AND r.lease_until > now()))
       RETURNING s.lease_epoch`,
      [this.replicaId, id, UNFINISHED],
    );
    const row = rows[0];
    if (!row) return false;
    this.sessions.own(id, Number(row.lease_epoch));
    return true;
  }

  /** The live replica that owns the session, if any. */
  async ownerOf(id: string): Promise<string | undefined> {
    const { rows } = await this.db.pool.query<{ owner: string }>(
      `SELECT s.owner FROM sessions s JOIN replicas r ON r.id = s.owner
       WHERE s.id = $1 AND r.lease_until > now()`,
      [id],
    );
    return rows[0]?.owner;
  }

  /** Gives the sessions up (a clean shutdown): another replica claims them at once, not after the lease. */
  async release(ids: string[]): Promise<void> {
    for (const id of ids) {
      const epoch = this.sessions.epochOf(id);
      if (epoch === undefined) continue;
      this.sessions.markLost(id);
      await this.db.pool.query(
        "UPDATE sessions SET owner = NULL WHERE id = $1 AND owner = $2 AND lease_epoch = $3",
        [id, this.replicaId, epoch],
      );
    }
  }

  /** Replicas whose lease is live now, this one included when it is. */
  async live(): Promise<string[]> {
    const { rows } = await this.db.pool.query<{ id: string }>(
      "SELECT id FROM replicas WHERE lease_until > now() ORDER BY id",
    );
    return rows.map((r) => r.id);
  }

  /** Ends the lease now (a clean shutdown), after releasing the sessions still owned. */
  async leave(): Promise<void> {
    await this.release([...this.sessions.owned()].map(([id]) => id));
    await this.db.pool.query("DELETE FROM replicas WHERE id = $1", [this.replicaId]);
  }
}
