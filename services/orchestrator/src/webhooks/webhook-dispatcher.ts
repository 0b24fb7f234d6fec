import type { Logger } from "@dmesh/runtime/logger";
import type { PendingDelivery, WebhookStore } from "../store/webhook-store.js";
import type { WebhookPolicy } from "./webhook-policy.js";
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signBody } from "./webhook-signature.js";

export interface DeliveryOptions {
  /** POSTs per delivery before it is given up (the first one included). */
  readonly maxAttempts: number;
  /** Wait before the second attempt; doubles per attempt up to `maxBackoffMs`. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** One POST's deadline. */
  readonly timeoutMs: number;
}

const CONCURRENT_POSTS = 8;
// A claimed delivery is due again this long after its POST's deadline, should the claimer die meanwhile.
const CLAIM_MARGIN_MS = 5_000;

/**
 * Delivers webhooks: each delivery is stored before its first POST and removed once a receiver answers 2xx
 * (or after the last attempt), so an orchestrator restart picks up every one still pending. Each POST is
 * signed (`x-dmesh-signature: sha256=<hex HMAC-SHA256 of the body>`); redirects are not followed, so a
 * callback cannot be bounced past the allow-list.
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<string>();
  private readonly closing = new AbortController();
  private pumping: Promise<void> | undefined;
  private again = false;
  /** The first pass after a start sends every pending delivery at once: a restart is worth a retry. */
  private firstPass = false;

  constructor(
    private readonly store: WebhookStore,
    private readonly policy: WebhookPolicy,
    private readonly options: DeliveryOptions,
    private readonly logger: Logger,
  ) {}

  /** Delivers whatever a previous run left pending, without waiting out its backoff. */
  start(): void {
    this.firstPass = true;
    this.kick();
  }

  /** Stores a delivery (once per `id`) and sends it. */
  async enqueue(delivery: {
    id: string;
    tenant: string;
    url: string;
    event: string;
    body: string;
  }): Promise<void> {
    await this.store.add({ ...delivery, nextAt: Date.now() });
    this.kick();
  }

  async close(): Promise<void> {
    this.closing.abort();
    clearTimeout(this.timer);
    await this.pumping;
  }

  private kick(): void {
    if (this.closing.signal.aborted) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.pump()
      .catch((err: unknown) => this.logger.error({ err: String(err) }, "webhook deliveries stalled"))
      .finally(() => {
        this.pumping = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Sends every due delivery, then sleeps until the next one is due. */
  private async pump(): Promise<void> {
    clearTimeout(this.timer);
    const pending = await this.store.pending();
    const now = this.firstPass ? Number.POSITIVE_INFINITY : Date.now();
    this.firstPass = false;
    const due = pending.filter((d) => d.nextAt <= now && !this.inFlight.has(d.id));
    for (let i = 0; i < due.length; i += CONCURRENT_POSTS) {
      await Promise.all(due.slice(i, i + CONCURRENT_POSTS).map((d) => this.deliver(d)));
    }
    const later = (await this.store.pending()).map((d) => d.nextAt);
    if (later.length > 0 && !this.closing.signal.aborted) {
      this.timer = setTimeout(() => this.kick(), Math.max(0, Math.min(...later) - Date.now()));
      this.timer.unref();
    }
  }

  private async deliver(d: PendingDelivery): Promise<void> {
    this.inFlight.add(d.id);
    const attempt = d.attempts + 1;
    try {
      // Another orchestrator replica on the same database sees it pending too: one claim wins.
      const until = Date.now() + this.options.timeoutMs + CLAIM_MARGIN_MS;
      if (!(await this.store.claim(d.id, d.nextAt, until))) return;
      const response = await fetch(d.url, {
        method: "POST",
        body: d.body,
        redirect: "manual",
        headers: {
          "content-type": "application/json",
          [SIGNATURE_HEADER]: signBody(this.policy.secretOf(d.tenant), d.body),
          [DELIVERY_HEADER]: d.id,
          [EVENT_HEADER]: d.event,
        },
        signal: AbortSignal.any([this.closing.signal, AbortSignal.timeout(this.options.timeoutMs)]),
      });
      await response.body?.cancel();
      if (response.status >= 200 && response.status < 300) {
        await this.store.remove(d.id);
        this.logger.info({ delivery: d.id, url: d.url, attempt }, "webhook delivered");
        return;
      }
      await this.failed(d, attempt, `HTTP ${response.status}`);
    } catch (err) {
      // Shutting down: the delivery stays as it was, for the next start.
      if (this.closing.signal.aborted) return;
      await this.failed(d, attempt, err instanceof Error ? err.message : String(err));
    } finally {
      this.inFlight.delete(d.id);
    }
  }

  private async failed(d: PendingDelivery, attempt: number, error: string): Promise<void> {
    const { maxAttempts, initialBackoffMs, maxBackoffMs } = this.options;
    if (attempt >= maxAttempts) {
      await this.store.remove(d.id);
      this.logger.error({ delivery: d.id, url: d.url, attempt, err: error }, "webhook given up");
      return;
    }
    const wait = Math.min(initialBackoffMs * 2 ** (attempt - 1), maxBackoffMs);
    await this.store.retryLater(d.id, attempt, Date.now() + wait, error);
    this.logger.warn(
      { delivery: d.id, url: d.url, attempt, err: error, retryInMs: wait },
      "webhook failed; retrying",
    );
  }
}
