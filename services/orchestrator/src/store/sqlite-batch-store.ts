import { toBinary } from "@bufbuild/protobuf";
import { type Batch, BatchSchema } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { DEFAULT_TENANT } from "@dmesh/runtime/tenants";
import { type BatchStore, batchOf } from "./batch-store.js";
import type { Db } from "./database.js";

/** The batch store in the embedded SQLite file: each write is applied before its call returns. */
export class SqliteBatchStore implements BatchStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare(
        "INSERT INTO batches (id, tenant, request_id, created_at, data) VALUES (?, ?, ?, ?, ?)",
      ),
      update: db.prepare("UPDATE batches SET data = ? WHERE id = ?"),
      get: db.prepare("SELECT tenant, data FROM batches WHERE id = ?"),
      byRequest: db.prepare("SELECT tenant, data FROM batches WHERE tenant = ? AND request_id = ?"),
      list: db.prepare("SELECT tenant, data FROM batches WHERE id > ? ORDER BY id LIMIT ?"),
      listOf: db.prepare("SELECT tenant, data FROM batches WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?"),
      delete: db.prepare("DELETE FROM batches WHERE id = ?"),
    };
  }

  async create(batch: Batch): Promise<void> {
    batch.tenant ||= DEFAULT_TENANT;
    this.stmts.insert.run(
      batch.id,
      batch.tenant,
      batch.requestId || null,
      Date.now(),
      toBinary(BatchSchema, batch),
    );
  }

  async save(batch: Batch): Promise<void> {
    this.stmts.update.run(toBinary(BatchSchema, batch), batch.id);
  }

  /** Any tenant's batch: its owner is checked by whoever answers a caller. */
  async get(id: string): Promise<Batch | undefined> {
    return batchOf(this.stmts.get.get(id) as Row | undefined);
  }

  /** The tenant's batch made for this request id: request ids are unique per tenant. */
  async getByRequestId(tenant: string, requestId: string): Promise<Batch | undefined> {
    return batchOf(this.stmts.byRequest.get(tenant, requestId) as Row | undefined);
  }

  /** One tenant's batches by id, after `after`; every tenant's with `tenant` undefined (recovery). */
  async list(tenant: string | undefined, after: string, limit: number): Promise<Batch[]> {
    const rows = (
      tenant === undefined ? this.stmts.list.all(after, limit) : this.stmts.listOf.all(tenant, after, limit)
    ) as Row[];
    return rows.map((r) => batchOf(r) as Batch);
  }

  async delete(id: string): Promise<boolean> {
    return this.stmts.delete.run(id).changes > 0;
  }
}

interface Row {
  tenant: string;
  data: Buffer;
}
