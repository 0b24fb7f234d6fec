import type { Db } from "./database.js";

export interface PendingDelivery {
  readonly id: string;
  readonly tenant: string;
  readonly url: string;
  /** "session" or "batch". */
  readonly event: string;
  readonly body: string;
  readonly attempts: number;
  /** Epoch ms of the next attempt. */
  readonly nextAt: number;
}

/** Webhook deliveries not yet made: stored before the first attempt, so that a restart loses none. */
export class WebhookStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare(
        "INSERT OR IGNORE INTO webhook_deliveries (id, tenant, url, body, next_at) VALUES (?, ?, ?, ?, ?)",
      ),
      pending: db.prepare(
        "SELECT id, tenant, url, body, attempts, next_at AS nextAt FROM webhook_deliveries ORDER BY next_at LIMIT ?",
      ),
      retry: db.prepare(
        "UPDATE webhook_deliveries SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?",
      ),
      remove: db.prepare("DELETE FROM webhook_deliveries WHERE id = ?"),
    };
  }

  /** Adds a delivery once: its id names what ended, so a second add of the same end is ignored. */
  async add(delivery: Omit<PendingDelivery, "attempts">): Promise<void> {
    // The event travels inside the stored body's envelope: {event, body}.
    this.stmts.insert.run(
      delivery.id,
      delivery.tenant,
      delivery.url,
      JSON.stringify({ event: delivery.event, body: delivery.body }),
      delivery.nextAt,
    );
  }

  /** The earliest deliveries, due or not. */
  async pending(limit = 100): Promise<PendingDelivery[]> {
    const rows = this.stmts.pending.all(limit) as (Omit<PendingDelivery, "event"> & { body: string })[];
    return rows.map((r) => {
      const { event, body } = JSON.parse(r.body) as { event: string; body: string };
      return { ...r, event, body };
    });
  }

  async retryLater(id: string, attempts: number, nextAt: number, error: string): Promise<void> {
    this.stmts.retry.run(attempts, nextAt, error.slice(0, 500), id);
  }

  async remove(id: string): Promise<void> {
    this.stmts.remove.run(id);
  }
}
