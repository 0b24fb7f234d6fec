import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type DenoiseCheckpoint,
  DenoiseCheckpointSchema,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { type ImageInput, ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  type Session,
  SessionSchema,
  type SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { DEFAULT_TENANT } from "@dmesh/runtime/tenants";
import { FINISHED_STATES, type SessionFilter, type SessionStore, sessionOf } from "../session-store.js";
import type { PgDatabase, Queryable } from "./pg-database.js";
import { bytea } from "./pg-values.js";

/** A write of a session whose lease another replica has taken since: this replica no longer owns it. */
export class FencedError extends Error {
  constructor(readonly sessionId: string) {
    super(`session ${sessionId} is owned by another replica now: its lease epoch moved on`);
    this.name = "FencedError";
  }
}

interface Row {
  tenant: string;
  data: Buffer;
}

/**
 * The session store in PostgreSQL. A replica's writes of a session it owns carry the lease epoch it owns it
 * under (`own`): once another replica has adopted the session (a newer epoch), they are refused with
 * FencedError and change nothing.
 */
export class PgSessionStore implements SessionStore {
  /** Sessions this replica owns, with the lease epoch its writes of them must still match. */
  private readonly epochs = new Map<string, number>();
  /** Sessions this replica owned and another has taken since: its writes of them are refused from now on. */
  private readonly lost = new Set<string>();

  /** `owner`: this replica's id, made the owner of the sessions it creates (undefined: no owner). */
  constructor(
    private readonly db: PgDatabase,
    private readonly owner?: string,
  ) {}

  /** From now on this replica's writes of the session are fenced by `epoch`. */
  own(id: string, epoch: number): void {
    this.lost.delete(id);
    this.epochs.set(id, epoch);
  }

  /** No longer this replica's (finished, or released to another): its writes of it are no longer fenced. */
  disown(id: string): void {
    this.epochs.delete(id);
  }

  /** Taken by another replica: this replica's writes of it are refused until it owns it again. */
  markLost(id: string): void {
    this.epochs.delete(id);
    this.lost.add(id);
  }

  epochOf(id: string): number | undefined {
    return this.epochs.get(id);
  }

  /** The sessions this replica owns, with their lease epochs. */
  owned(): IterableIterator<[string, number]> {
    return this.epochs.entries();
  }

  async create(
    session: Session,
    inputs: Record<string, ImageInput>,
    options: { offered?: boolean } = {},
  ): Promise<void> {
    const owner = options.offered ? undefined : this.owner;
    session.tenant ||= DEFAULT_TENANT;
    const now = Date.now();
    const data = bytea(toBinary(SessionSchema, session));
    const rows = Object.entries(inputs).map(([name, input]) => [
      name,
      bytea(toBinary(ImageInputSchema, input)),
    ]);
    const epoch = owner ? 1 : 0;
    if (owner) this.epochs.set(session.id, epoch);
    await this.db.transaction(session.id, async (q) => {
      await q.query(
        `INSERT INTO sessions (id, tenant, state, request_id, batch_id, priority, created_at, updated_at, data, owner, lease_epoch)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)`,
        [
          session.id,
          session.tenant,
          session.state,
          session.requestId || null,
          session.batchId || null,
          session.priority,
          now,
          data,
          owner ?? null,
          epoch,
        ],
      );
      for (const [name, input] of rows) await putInput(q, session.id, name as string, input as Buffer);
    });
  }

  save(session: Session): Promise<void> {
    const { id, state } = session;
    const data = bytea(toBinary(SessionSchema, session));
    const epoch = this.epochs.get(id);
    return this.db.write(id, async (q) => {
      this.refuseLost(id);
      await this.update(q, id, state, data, epoch);
      // A finished session is nobody's to run: its lease is no longer checked.
      if (FINISHED_STATES.includes(state) && this.epochs.get(id) === epoch) this.epochs.delete(id);
    });
  }

  async get(id: string): Promise<Session | undefined> {
    return sessionOf(
      (await this.db.read<Row>([id], "SELECT tenant, data FROM sessions WHERE id = $1", [id]))[0],
    );
  }

  async getByRequestId(tenant: string, requestId: string): Promise<Session | undefined> {
    const rows = await this.db.read<Row>(
      "all",
      "SELECT tenant, data FROM sessions WHERE tenant = $1 AND request_id = $2",
      [tenant, requestId],
    );
    return sessionOf(rows[0]);
  }

  async listByState(state: SessionState): Promise<Session[]> {
    const rows = await this.db.read<Row>(
      "all",
      "SELECT tenant, data FROM sessions WHERE state = $1 ORDER BY priority DESC, created_at, id",
      [state],
    );
    return rows.map((r) => sessionOf(r) as Session);
  }

  async list(filter: SessionFilter): Promise<Session[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (value: unknown) => {
      args.push(value);
      return `$${args.length}`;
    };
    if (filter.tenant !== undefined) where.push(`tenant = ${arg(filter.tenant)}`);
    if (filter.states.length > 0) where.push(`state = ANY(${arg(filter.states)}::int[])`);
    if (filter.batchId) where.push(`batch_id = ${arg(filter.batchId)}`);
    if (filter.after) where.push(`id > ${arg(filter.after)}`);
    const sql = `SELECT tenant, data FROM sessions ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT ${arg(filter.limit)}`;
    return (await this.db.read<Row>("all", sql, args)).map((r) => sessionOf(r) as Session);
  }

  putInputs(id: string, inputs: Record<string, ImageInput>): Promise<void> {
    const rows = Object.entries(inputs).map(([name, input]) => [
      name,
      bytea(toBinary(ImageInputSchema, input)),
    ]);
    const epoch = this.epochs.get(id);
    return this.db.transaction(id, async (q) => {
      this.refuseLost(id);
      await this.fence(q, id, epoch);
      for (const [name, input] of rows) await putInput(q, id, name as string, input as Buffer);
    });
  }

  resetProgress(id: string): Promise<void> {
    const epoch = this.epochs.get(id);
    return this.db.transaction(id, async (q) => {
      this.refuseLost(id);
      await this.fence(q, id, epoch);
      await q.query("DELETE FROM session_inputs WHERE session_id = $1 AND name LIKE 'step.%'", [id]);
      await q.query("DELETE FROM checkpoints WHERE session_id = $1", [id]);
    });
  }

  async inputs(id: string): Promise<Record<string, ImageInput>> {
    const out: Record<string, ImageInput> = {};
    const rows = await this.db.read<{ name: string; data: Buffer }>(
      [id],
      "SELECT name, data FROM session_inputs WHERE session_id = $1",
      [id],
    );
    for (const row of rows) out[row.name] = fromBinary(ImageInputSchema, row.data);
    return out;
  }

  saveWithCheckpoint(session: Session, checkpoint: DenoiseCheckpoint): Promise<void> {
    const { id, state } = session;
    const data = bytea(toBinary(SessionSchema, session));
    const saved = bytea(toBinary(DenoiseCheckpointSchema, checkpoint));
    const epoch = this.epochs.get(id);
    return this.db.transaction(id, async (q) => {
      this.refuseLost(id);
      await this.update(q, id, state, data, epoch);
      await q.query(
        `INSERT INTO checkpoints (session_id, step, data) VALUES ($1, $2, $3)
         ON CONFLICT (session_id) DO UPDATE SET step = excluded.step, data = excluded.data`,
        [id, checkpoint.step, saved],
      );
    });
  }

  async checkpoint(id: string): Promise<DenoiseCheckpoint | undefined> {
    const rows = await this.db.read<{ data: Buffer }>(
      [id],
      "SELECT data FROM checkpoints WHERE session_id = $1",
      [id],
    );
    return rows[0] ? fromBinary(DenoiseCheckpointSchema, rows[0].data) : undefined;
  }

  dropCheckpoint(id: string): Promise<void> {
    const epoch = this.epochs.get(id);
    return this.db.transaction(id, async (q) => {
      this.refuseLost(id);
      await this.fence(q, id, epoch);
      await q.query("DELETE FROM checkpoints WHERE session_id = $1", [id]);
    });
  }

  async delete(id: string): Promise<boolean> {
    this.epochs.delete(id);
    this.lost.delete(id);
    const deleted = await this.db.write(id, (q) => q.query("DELETE FROM sessions WHERE id = $1", [id]));
    return (deleted.rowCount ?? 0) > 0;
  }

  async finishedBefore(time: number): Promise<{ id: string; tenant: string }[]> {
    return this.db.read(
      "all",
      "SELECT id, tenant FROM sessions WHERE state = ANY($1::int[]) AND updated_at < $2",
      [FINISHED_STATES, time],
    );
  }

  async counts(): Promise<Map<SessionState, number>> {
    const rows = await this.db.read<{ state: SessionState; n: string }>(
      "all",
      "SELECT state, COUNT(*) AS n FROM sessions GROUP BY state",
    );
    return new Map(rows.map((r) => [r.state, Number(r.n)]));
  }

  async countsByTenant(): Promise<{ state: SessionState; tenant: string; count: number }[]> {
    const rows = await this.db.read<{ state: SessionState; tenant: string; count: string }>(
      "all",
      "SELECT state, tenant, COUNT(*) AS count FROM sessions GROUP BY state, tenant",
    );
    return rows.map((r) => ({ state: r.state, tenant: r.tenant, count: Number(r.count) }));
  }

  /** The session's row, changed only while `epoch` (when this replica owns it) is still its lease epoch. */
  private async update(
    q: Queryable,
    id: string,
    state: SessionState,
    data: Buffer,
    epoch: number | undefined,
  ): Promise<void> {
    const now = Date.now();
    if (epoch === undefined) {
      await q.query("UPDATE sessions SET state = $1, updated_at = $2, data = $3 WHERE id = $4", [
        state,
        now,
        data,
        id,
      ]);
      return;
    }
    const changed = await q.query(
      "UPDATE sessions SET state = $1, updated_at = $2, data = $3 WHERE id = $4 AND lease_epoch = $5",
      [state, now, data, id, epoch],
    );
    if ((changed.rowCount ?? 0) === 0) await this.fence(q, id, epoch);
  }

  /** Throws FencedError when the session exists under a lease epoch other than `epoch`. */
  private async fence(q: Queryable, id: string, epoch: number | undefined): Promise<void> {
    if (epoch === undefined) return;
    const { rows } = await q.query<{ lease_epoch: string }>(
      "SELECT lease_epoch FROM sessions WHERE id = $1 FOR SHARE",
      [id],
    );
    const current = rows[0] && Number(rows[0].lease_epoch);
    if (current !== undefined && current !== epoch) {
      this.markLost(id);
      throw new FencedError(id);
    }
  }

  private refuseLost(id: string): void {
    if (this.lost.has(id)) throw new FencedError(id);
  }
}

function putInput(q: Queryable, sessionId: string, name: string, data: Buffer) {
  return q.query(
    `INSERT INTO session_inputs (session_id, name, data) VALUES ($1, $2, $3)
     ON CONFLICT (session_id, name) DO UPDATE SET data = excluded.data`,
    [sessionId, name, data],
  );
}
