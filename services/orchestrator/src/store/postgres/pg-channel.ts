import type { Logger } from "@dmesh/runtime/logger";
import pg from "pg";

/** PostgreSQL's NOTIFY payloads are at most 8000 bytes. */
export const MAX_PAYLOAD = 7900;

/**
 * One LISTEN/NOTIFY channel between the replicas of one database. Each listener holds its own connection
 * (a pooled one would lose its LISTEN when returned); when that connection drops it connects again, with a
 * growing pause, until closed. Notifications sent while it was away are lost: a listener must read the
 * database again after a reconnect (`onReconnect`).
 */
export class PgChannel {
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = 100;
  private readonly handlers = new Set<(payload: string) => void>();
  private readonly reconnectHandlers = new Set<() => void>();

  constructor(
    private readonly url: string,
    readonly name: string,
    private readonly logger: Logger,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad channel name ${name}`);
  }

  /** Sends `payload` (at most MAX_PAYLOAD bytes) to every listener, this replica's included. */
  static async notify(pool: pg.Pool, channel: string, payload: string): Promise<void> {
    if (Buffer.byteLength(payload) > MAX_PAYLOAD)
      throw new Error(
        `a notification on ${channel} is ${Buffer.byteLength(payload)} bytes, over ${MAX_PAYLOAD}`,
      );
    await pool.query("SELECT pg_notify($1, $2)", [channel, payload]);
  }

  /** Starts listening; resolves once the first LISTEN is in place. */
  async listen(onPayload: (payload: string) => void): Promise<void> {
    this.handlers.add(onPayload);
    if (!this.client) await this.connect();
  }

  onReconnect(handler: () => void): void {
    this.reconnectHandlers.add(handler);
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      application_name: "dmesh-orchestrator-listen",
    });
    client.on("notification", (message) => {
      if (message.channel !== this.name) return;
      for (const handler of this.handlers) handler(message.payload ?? "");
    });
    client.on("error", (err) => {
      this.logger.warn({ channel: this.name, err: String(err) }, "postgres listener connection lost");
      void this.reconnect(client);
    });
    client.on("end", () => void this.reconnect(client));
    await client.connect();
    await client.query(`LISTEN ${this.name}`);
    this.client = client;
    this.retryMs = 100;
  }

  private async reconnect(lost: pg.Client): Promise<void> {
    if (this.closed || this.client !== lost) return;
    this.client = undefined;
    await lost.end().catch(() => {});
    while (!this.closed && !this.client) {
      await new Promise((r) => setTimeout(r, this.retryMs).unref());
      this.retryMs = Math.min(this.retryMs * 2, 5_000);
      try {
        await this.connect();
        for (const handler of this.reconnectHandlers) handler();
      } catch (err) {
        this.logger.warn({ channel: this.name, err: String(err) }, "postgres listener could not reconnect");
      }
    }
  }
}
