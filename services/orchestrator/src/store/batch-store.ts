import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Batch, BatchSchema } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import type { Db } from "./database.js";

export class BatchStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare("INSERT INTO batches (id, request_id, created_at, data) VALUES (?, ?, ?, ?)"),
      update: db.prepare("UPDATE batches SET data = ? WHERE id = ?"),
      get: db.prepare("SELECT data FROM batches WHERE id = ?"),
      byRequest: db.prepare("SELECT data FROM batches WHERE request_id = ?"),
      list: db.prepare("SELECT data FROM batches WHERE id > ? ORDER BY id LIMIT ?"),
      delete: db.prepare("DELETE FROM batches WHERE id = ?"),
    };
  }

  create(batch: Batch): void {
    this.stmts.insert.run(batch.id, batch.requestId || null, Date.now(), toBinary(BatchSchema, batch));
  }

  save(batch: Batch): void {
    this.stmts.update.run(toBinary(BatchSchema, batch), batch.id);
  }

  get(id: string): Batch | undefined {
    const row = this.stmts.get.get(id) as { data: Buffer } | undefined;
    return row ? fromBinary(BatchSchema, row.data) : undefined;
  }

  getByRequestId(requestId: string): Batch | undefined {
    const row = this.stmts.byRequest.get(requestId) as { data: Buffer } | undefined;
    return row ? fromBinary(BatchSchema, row.data) : undefined;
  }

  list(after: string, limit: number): Batch[] {
    return (this.stmts.list.all(after, limit) as { data: Buffer }[]).map((r) =>
      fromBinary(BatchSchema, r.data),
    );
  }

  delete(id: string): boolean {
    return this.stmts.delete.run(id).changes > 0;
  }
}
