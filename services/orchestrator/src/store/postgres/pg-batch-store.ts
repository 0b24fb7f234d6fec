import { toBinary } from "@bufbuild/protobuf";
import { type Batch, BatchSchema } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { DEFAULT_TENANT } from "@dmesh/runtime/tenants";
import { type BatchStore, batchOf } from "../batch-store.js";
import type { PgDatabase } from "./pg-database.js";
import { bytea } from "./pg-values.js";

interface Row {
  tenant: string;
  data: Buffer;
}

/** The batch store in PostgreSQL; a batch's writes are ordered by its id (PgDatabase.write). */
export class PgBatchStore implements BatchStore {
  constructor(private readonly db: PgDatabase) {}

  async create(batch: Batch): Promise<void> {
    batch.tenant ||= DEFAULT_TENANT;
    const args = [
      batch.id,
      batch.tenant,
      batch.requestId || null,
      Date.now(),
      bytea(toBinary(BatchSchema, batch)),
    ];
    await this.db.write(batch.id, (q) =>
      q.query(
        "INSERT INTO batches (id, tenant, request_id, created_at, data) VALUES ($1, $2, $3, $4, $5)",
        args,
      ),
    );
  }

  async save(batch: Batch): Promise<void> {
    const args = [bytea(toBinary(BatchSchema, batch)), batch.id];
    await this.db.write(batch.id, (q) => q.query("UPDATE batches SET data = $1 WHERE id = $2", args));
  }

  async get(id: string): Promise<Batch | undefined> {
    return batchOf(
      (await this.db.read<Row>([id], "SELECT tenant, data FROM batches WHERE id = $1", [id]))[0],
    );
  }

  async getByRequestId(tenant: string, requestId: string): Promise<Batch | undefined> {
    const rows = await this.db.read<Row>(
      "all",
      "SELECT tenant, data FROM batches WHERE tenant = $1 AND request_id = $2",
      [tenant, requestId],
    );
    return batchOf(rows[0]);
  }

  async list(tenant: string | undefined, after: string, limit: number): Promise<Batch[]> {
    const rows =
      tenant === undefined
        ? await this.db.read<Row>(
            "all",
            "SELECT tenant, data FROM batches WHERE id > $1 ORDER BY id LIMIT $2",
            [after, limit],
          )
        : await this.db.read<Row>(
            "all",
            "SELECT tenant, data FROM batches WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3",
            [tenant, after, limit],
          );
    return rows.map((r) => batchOf(r) as Batch);
  }

  async delete(id: string): Promise<boolean> {
    const deleted = await this.db.write(id, (q) => q.query("DELETE FROM batches WHERE id = $1", [id]));
    return (deleted.rowCount ?? 0) > 0;
  }
}
