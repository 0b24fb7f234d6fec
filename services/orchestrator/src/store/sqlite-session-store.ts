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
import type { Db } from "./database.js";
import { type SessionFilter, type SessionStore, sessionOf } from "./session-store.js";

/** The session store in the embedded SQLite file: each write is applied before its call returns. */
export class SqliteSessionStore implements SessionStore {
  private readonly stmts;

  constructor(private readonly db: Db) {
    this.stmts = {
      insert: db.prepare(
        "INSERT INTO sessions (id, tenant, state, request_id, batch_id, priority, created_at, updated_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      update: db.prepare("UPDATE sessions SET state = ?, updated_at = ?, data = ? WHERE id = ?"),
      get: db.prepare("SELECT tenant, data FROM sessions WHERE id = ?"),
      byRequest: db.prepare("SELECT tenant, data FROM sessions WHERE tenant = ? AND request_id = ?"),
      byState: db.prepare(
        "SELECT tenant, data FROM sessions WHERE state = ? ORDER BY priority DESC, created_at, id",
      ),
      delete: db.prepare("DELETE FROM sessions WHERE id = ?"),
      putInput: db.prepare("INSERT OR REPLACE INTO session_inputs (session_id, name, data) VALUES (?, ?, ?)"),
      inputs: db.prepare("SELECT name, data FROM session_inputs WHERE session_id = ?"),
      putCheckpoint: db.prepare(
        "INSERT OR REPLACE INTO checkpoints (session_id, step, data) VALUES (?, ?, ?)",
      ),
      checkpoint: db.prepare("SELECT data FROM checkpoints WHERE session_id = ?"),
      dropCheckpoint: db.prepare("DELETE FROM checkpoints WHERE session_id = ?"),
      finishedBefore: db.prepare(
        "SELECT id, tenant FROM sessions WHERE state IN (4, 5, 6) AND updated_at < ?",
      ),
      counts: db.prepare("SELECT state, COUNT(*) AS n FROM sessions GROUP BY state"),
      countsByTenant: db.prepare(
        "SELECT state, tenant, COUNT(*) AS count FROM sessions GROUP BY state, tenant",
      ),
    };
  }

  /** Inserts the session with its inputs in one transaction: it exists whole or not at all. */
  async create(session: Session, inputs: Record<string, ImageInput>): Promise<void> {
    session.tenant ||= DEFAULT_TENANT;
    this.db.transaction(() => {
      const now = Date.now();
      this.stmts.insert.run(
        session.id,
        session.tenant,
        session.state,
        session.requestId || null,
        session.batchId || null,
        session.priority,
        now,
        now,
        toBinary(SessionSchema, session),
      );
      for (const [name, input] of Object.entries(inputs)) {
        this.stmts.putInput.run(session.id, name, toBinary(ImageInputSchema, input));
      }
    })();
  }

  async save(session: Session): Promise<void> {
    this.saveNow(session);
  }

  private saveNow(session: Session): void {
    this.stmts.update.run(session.state, Date.now(), toBinary(SessionSchema, session), session.id);
  }

  /** Any tenant's session: its owner is checked by whoever answers a caller. */
  async get(id: string): Promise<Session | undefined> {
    return sessionOf(this.stmts.get.get(id) as Row | undefined);
  }

  /** The tenant's session made for this request id: request ids are unique per tenant. */
  async getByRequestId(tenant: string, requestId: string): Promise<Session | undefined> {
    return sessionOf(this.stmts.byRequest.get(tenant, requestId) as Row | undefined);
  }

  async listByState(state: SessionState): Promise<Session[]> {
    return (this.stmts.byState.all(state) as Row[]).map((r) => sessionOf(r) as Session);
  }

  /** One tenant's sessions by id, after `after`; all tenants' with `tenant` undefined (recovery, batches). */
  async list(filter: SessionFilter): Promise<Session[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.tenant !== undefined) {
      where.push("tenant = ?");
      args.push(filter.tenant);
    }
    if (filter.states.length > 0) {
      where.push(`state IN (${filter.states.map(() => "?").join(",")})`);
      args.push(...filter.states);
    }
    if (filter.batchId) {
      where.push("batch_id = ?");
      args.push(filter.batchId);
    }
    if (filter.after) {
      where.push("id > ?");
      args.push(filter.after);
    }
    const sql = `SELECT tenant, data FROM sessions ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT ?`;
    args.push(filter.limit);
    return (this.db.prepare(sql).all(...args) as Row[]).map((r) => sessionOf(r) as Session);
  }

  /** Adds or replaces named inputs (also a step's stored outputs) of an existing session. */
  async putInputs(id: string, inputs: Record<string, ImageInput>): Promise<void> {
    this.db.transaction(() => {
      for (const [name, input] of Object.entries(inputs)) {
        this.stmts.putInput.run(id, name, toBinary(ImageInputSchema, input));
      }
    })();
  }

  /** Forgets stored step outputs and the checkpoint: a restart begins from nothing but the request. */
  async resetProgress(id: string): Promise<void> {
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM session_inputs WHERE session_id = ? AND name LIKE 'step.%'").run(id);
      this.stmts.dropCheckpoint.run(id);
    })();
  }

  async inputs(id: string): Promise<Record<string, ImageInput>> {
    const out: Record<string, ImageInput> = {};
    for (const row of this.stmts.inputs.all(id) as { name: string; data: Buffer }[]) {
      out[row.name] = fromBinary(ImageInputSchema, row.data);
    }
    return out;
  }

  /** Stores the session's state and its newest checkpoint together, so they never disagree after a crash. */
  async saveWithCheckpoint(session: Session, checkpoint: DenoiseCheckpoint): Promise<void> {
    this.db.transaction(() => {
      this.stmts.putCheckpoint.run(
        session.id,
        checkpoint.step,
        toBinary(DenoiseCheckpointSchema, checkpoint),
      );
      this.saveNow(session);
    })();
  }

  async checkpoint(id: string): Promise<DenoiseCheckpoint | undefined> {
    const row = this.stmts.checkpoint.get(id) as { data: Buffer } | undefined;
    return row ? fromBinary(DenoiseCheckpointSchema, row.data) : undefined;
  }

  async dropCheckpoint(id: string): Promise<void> {
    this.stmts.dropCheckpoint.run(id);
  }

  async delete(id: string): Promise<boolean> {
    return this.stmts.delete.run(id).changes > 0;
  }

  /** Finished sessions last changed before `time`, every tenant's. */
  async finishedBefore(time: number): Promise<{ id: string; tenant: string }[]> {
    return this.stmts.finishedBefore.all(time) as { id: string; tenant: string }[];
  }

  async counts(): Promise<Map<SessionState, number>> {
    const rows = this.stmts.counts.all() as { state: SessionState; n: number }[];
    return new Map(rows.map((r) => [r.state, r.n]));
  }

  /** Sessions stored, by state and tenant. */
  async countsByTenant(): Promise<{ state: SessionState; tenant: string; count: number }[]> {
    return this.stmts.countsByTenant.all() as { state: SessionState; tenant: string; count: number }[];
  }
}

interface Row {
  tenant: string;
  data: Buffer;
}
