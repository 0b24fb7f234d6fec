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
export interface WebhookStore {
  /** Adds a delivery once: its id names what ended, so a second add of the same end is ignored. */
  add(delivery: Omit<PendingDelivery, "attempts">): Promise<void>;
  /** The earliest deliveries, due or not. */
  pending(limit?: number): Promise<PendingDelivery[]>;
  /**
   * Takes a delivery for one attempt: true when its next attempt was still at `seenNextAt` (no other
   * orchestrator replica on the same database took it meanwhile). It is then not due again before `until`,
   * so that a replica dying mid-POST leaves it to another.
   */
  claim(id: string, seenNextAt: number, until: number): Promise<boolean>;
  retryLater(id: string, attempts: number, nextAt: number, error: string): Promise<void>;
  remove(id: string): Promise<void>;
}

/** The stored body: the event travels inside its envelope, {event, body}. */
export function deliveryBody(delivery: { event: string; body: string }): string {
  return JSON.stringify({ event: delivery.event, body: delivery.body });
}

/** A stored row back as a delivery. */
export function deliveryOf(row: Omit<PendingDelivery, "event">): PendingDelivery {
  const { event, body } = JSON.parse(row.body) as { event: string; body: string };
  return { ...row, event, body };
}

/** A failure's message as stored: bounded. */
export function storedError(error: string): string {
  return error.slice(0, 500);
}
