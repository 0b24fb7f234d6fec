import type { PgDatabase } from "./pg-database.js";

/**
 * Which replica feeds each running batch (submits its items as sessions): one at a time, so that no item gets
 * two sessions. A replica becomes the feeder when there is none or the feeder's lease is over (it died), and
 * stays it while its lease lives.
 */
export class BatchFeeders {
  constructor(
    private readonly db: PgDatabase,
    private readonly replicaId: string,
  ) {}

  /** True when this replica feeds the batch now (it already did, or it just took it over). */
  async claim(batchId: string): Promise<boolean> {
    const { rows } = await this.db.pool.query(
      `INSERT INTO batch_feeders (batch_id, replica) VALUES ($1, $2)
       ON CONFLICT (batch_id) DO UPDATE SET replica = excluded.replica
         WHERE batch_feeders.replica = excluded.replica
            OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.id = batch_feeders.replica AND r.lease_until > now())
       RETURNING replica`,
      [batchId, this.replicaId],
    );
    return rows.length > 0;
  }

  /** The batch finished here: whichever replica is asked to retry its failed items may feed it. */
  async release(batchId: string): Promise<void> {
    await this.db.pool.query("DELETE FROM batch_feeders WHERE batch_id = $1 AND replica = $2", [
      batchId,
      this.replicaId,
    ]);
  }
}
