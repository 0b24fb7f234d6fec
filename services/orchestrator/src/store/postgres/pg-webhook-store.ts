import {
  deliveryBody,
  deliveryOf,
  type PendingDelivery,
  storedError,
  type WebhookStore,
} from "../webhook-store.js";
import type { PgDatabase } from "./pg-database.js";

interface Row {
  id: string;
  tenant: string;
  url: string;
  body: string;
  attempts: number;
  nextAt: string;
}

/** The webhook delivery store in PostgreSQL; a delivery's writes are ordered by its id. */
export class PgWebhookStore implements WebhookStore {
  constructor(private readonly db: PgDatabase) {}

  async add(delivery: Omit<PendingDelivery, "attempts">): Promise<void> {
    const args = [delivery.id, delivery.tenant, delivery.url, deliveryBody(delivery), delivery.nextAt];
    await this.db.write(delivery.id, (q) =>
      q.query(
        "INSERT INTO webhook_deliveries (id, tenant, url, body, next_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        args,
      ),
    );
  }

  async pending(limit = 100): Promise<PendingDelivery[]> {
    const rows = await this.db.read<Row>(
      "all",
      `SELECT id, tenant, url, body, attempts, next_at AS "nextAt" FROM webhook_deliveries ORDER BY next_at LIMIT $1`,
      [limit],
    );
    // BIGINT arrives as a string.
    return rows.map((r) => deliveryOf({ ...r, nextAt: Number(r.nextAt) }));
  }

  async claim(id: string, seenNextAt: number, until: number): Promise<boolean> {
    const claimed = await this.db.write(id, (q) =>
      q.query("UPDATE webhook_deliveries SET next_at = $1 WHERE id = $2 AND next_at = $3", [
        until,
        id,
        seenNextAt,
      ]),
    );
    return claimed.rowCount === 1;
  }

  async retryLater(id: string, attempts: number, nextAt: number, error: string): Promise<void> {
    const args = [attempts, nextAt, storedError(error), id];
    await this.db.write(id, (q) =>
      q.query(
        "UPDATE webhook_deliveries SET attempts = $1, next_at = $2, last_error = $3 WHERE id = $4",
        args,
      ),
    );
  }

  async remove(id: string): Promise<void> {
    await this.db.write(id, (q) => q.query("DELETE FROM webhook_deliveries WHERE id = $1", [id]));
  }
}
