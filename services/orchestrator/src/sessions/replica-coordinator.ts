import type { Logger } from "@dmesh/runtime/logger";
import type { PgSessionStore } from "../store/postgres/pg-session-store.js";
import type { ReplicaLeases } from "../store/postgres/replica-leases.js";
import type { Ownership } from "./ownership.js";
import type { SessionManager } from "./session-manager.js";

/**
 * This replica's part among several on one PostgreSQL database: it renews its lease every third of it,
 * stops what another replica has adopted meanwhile, and claims sessions whose owner's lease ran out (a dead
 * or frozen replica's) as far as it has room. On a clean shutdown it hands its sessions over at once.
 */
export class ReplicaCoordinator implements Ownership {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private sessions: SessionManager | undefined;

  constructor(
    private readonly leases: ReplicaLeases,
    private readonly store: PgSessionStore,
    private readonly leaseMs: number,
    private readonly logger: Logger,
  ) {}

  get replicaId(): string {
    return this.leases.replicaId;
  }

  owns(id: string): boolean {
    return this.store.epochOf(id) !== undefined;
  }

  take(id: string): Promise<boolean> {
    return this.leases.take(id);
  }

  /** Takes the lease, claims what it can, and keeps doing so until `stop`. */
  async start(sessions: SessionManager): Promise<void> {
    this.sessions = sessions;
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /** Ends the lease and releases the sessions this replica still owns (call once they stopped running). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    await this.leases.leave().catch((err: unknown) => {
      this.logger.warn({ err: String(err) }, "could not hand sessions over; they move after the lease");
    });
  }

  private tick(): Promise<void> {
    if (this.ticking || this.stopped) return this.ticking ?? Promise.resolve();
    this.ticking = (async () => {
      try {
        const { lost } = await this.leases.heartbeat();
        for (const id of lost) {
          this.logger.warn({ sessionId: id }, "session adopted by another replica while this one was away");
          this.sessions?.abandon(id);
        }
        const room = this.sessions?.room() ?? 0;
        if (room > 0 && !this.stopped) {
          for (const { session } of await this.leases.claim(room)) {
            this.logger.info({ sessionId: session.id }, "adopted a session whose owner's lease ran out");
            this.sessions?.adopt(session);
          }
        }
      } catch (err) {
        this.logger.warn({ err: String(err) }, "replica heartbeat failed");
      } finally {
        this.ticking = undefined;
      }
    })();
    return this.ticking;
  }
}
