import { fromBinary } from "@bufbuild/protobuf";
import { type Batch, BatchSchema } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";

/** Batches as rows (SQLite or PostgreSQL); promises as the session store's, a batch's writes in call order. */
export interface BatchStore {
  create(batch: Batch): Promise<void>;
  save(batch: Batch): Promise<void>;
  /** Any tenant's batch: its owner is checked by whoever answers a caller. */
  get(id: string): Promise<Batch | undefined>;
  /** The tenant's batch made for this request id: request ids are unique per tenant. */
  getByRequestId(tenant: string, requestId: string): Promise<Batch | undefined>;
  /** One tenant's batches by id, after `after`; every tenant's with `tenant` undefined (recovery). */
  list(tenant: string | undefined, after: string, limit: number): Promise<Batch[]>;
  delete(id: string): Promise<boolean>;
}

/** A stored batch; its owner is the row's (batches stored before tenants existed lack it in `data`). */
export function batchOf(row: { tenant: string; data: Uint8Array } | undefined): Batch | undefined {
  if (!row) return undefined;
  const batch = fromBinary(BatchSchema, row.data);
  batch.tenant = row.tenant;
  return batch;
}
