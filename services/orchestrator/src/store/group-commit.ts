import type { Logger } from "@dmesh/runtime";
import type { Db } from "./database.js";

/**
 * Group commit. The database runs with synchronous=NORMAL: a write is in the WAL when it returns, so it
 * survives a crash of this process at once, but reaches the disk later. What a client is told waits for
 * `afterSync`: one fsync'd commit per event-loop turn then covers every write made before it (the WAL is
 * synced in order), however many sessions wrote, instead of one fsync per write blocking the loop each.
 */
export class GroupCommit {
  private waiting: (() => void)[] = [];
  private scheduled = false;
  private closed = false;
  private readonly marker;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {
    this.marker = db.prepare("UPDATE durability_marker SET commits = commits + 1");
  }

  /** Runs `then` once everything written so far is on disk. */
  afterSync(then: () => void): void {
    this.waiting.push(then);
    if (this.closed) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Runs `then` now, or, when others wait for a sync, after them: what is told keeps its order. */
  inOrder(then: () => void): void {
    if (this.waiting.length > 0) this.waiting.push(then);
    else then();
  }

  sync(): Promise<void> {
    return new Promise((resolve) => this.afterSync(resolve));
  }

  /** Syncs what is pending and from now on syncs at once (the database is about to close). */
  close(): void {
    this.closed = true;
    this.flush();
  }

  private flush(): void {
    this.scheduled = false;
    const waiting = this.waiting;
    this.waiting = [];
    if (waiting.length === 0) return;
    if (this.db.open) {
      this.db.pragma("synchronous = FULL");
      try {
        this.marker.run();
      } catch (err) {
        // Telling is not held back forever by a failing disk; the failure is in the log.
        this.logger.error({ err: String(err) }, "group commit failed to sync");
      } finally {
        this.db.pragma("synchronous = NORMAL");
      }
    }
    for (const then of waiting) then();
  }
}
