import type { Db } from "./database.js";
import {
  deliveryBody,
  deliveryOf,
  type PendingDelivery,
  storedError,
  type WebhookStore,
} from "./webhook-store.js";

/** The webhook delivery store in the embedded SQLite file. */
export class SqliteWebhookStore implements WebhookStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare(
        "INSERT OR IGNORE INTO webhook_deliveries (id, tenant, url, body, next_at) VALUES (?, ?, ?, ?, ?)",
      ),
      pending: db.prepare(
        "SELECT id, tenant, url, body, attempts, next_at AS nextAt FROM webhook_deliveries ORDER BY next_at LIMIT ?",
      ),
      claim: db.prepare("UPDATE webhook_deliveries SET next_at = ? WHERE id = ? AND next_at = ?"),
      retry: db.prepare(
        "UPDATE webhook_deliveries SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
      ),
      remove: db.prepare("DELETE FROM webhook_deliveries WHERE id = ?"),
    };
  }

  async add(delivery: Omit<PendingDelivery, "attempts">): Promise<void> {
    this.stmts.insert.run(
      delivery.id,
      delivery.tenant,
      delivery.url,
      deliveryBody(delivery),
      delivery.nextAt,
    );
  }

  async pending(limit = 100): Promise<PendingDelivery[]> {
    const rows = this.stmts.pending.all(limit) as Omit<PendingDelivery, "event">[];
    return rows.map(deliveryOf);
  }

  async claim(id: string, seenNextAt: number, until: number): Promise<boolean> {
    return this.stmts.claim.run(until, id, seenNextAt).changes === 1;
  }

  async retryLater(id: string, attempts: number, nextAt: number, error: string): Promise<void> {
    this.stmts.retry.run(attempts, nextAt, storedError(error), id);
  }

  async remove(id: string): Promise<void> {
    this.stmts.remove.run(id);
  }
}
