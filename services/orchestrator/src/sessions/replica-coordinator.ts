import type { SessionAction } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { UnavailableError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { ControlRelay } from "../store/postgres/control-relay.js";
import { PgChannel } from "../store/postgres/pg-channel.js";
import type { PgDatabase } from "../store/postgres/pg-database.js";
import type { PgSessionStore } from "../store/postgres/pg-session-store.js";
import type { ReplicaLeases } from "../store/postgres/replica-leases.js";
import type { Ownership } from "./ownership.js";
import type { SessionManager } from "./session-manager.js";

const OFFERS = "dmesh_sessions_offered";

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
  /** Tells every replica that sessions were offered: they claim at once rather than at their next beat. */
  private readonly offers: PgChannel;
  private readonly relay: ControlRelay;
  private again = false;

  constructor(
    private readonly leases: ReplicaLeases,
    private readonly store: PgSessionStore,
    private readonly db: PgDatabase,
    databaseUrl: string,
    private readonly leaseMs: number,
    private readonly logger: Logger,
  ) {
    this.offers = new PgChannel(databaseUrl, OFFERS, logger);
    this.relay = new ControlRelay(db, databaseUrl, leases.replicaId, logger);
  }

  async forward(id: string, tenant: string, action: SessionAction): Promise<void> {
    const owner = await this.leases.ownerOf(id);
    if (!owner || owner === this.replicaId)
      throw new UnavailableError(
        `session ${id} is between orchestrator replicas (its owner's lease ran out); send the command again in a moment`,
      );
    await this.relay.send(owner, id, tenant, action);
  }

  get replicaId(): string {
    return this.leases.replicaId;
  }

  owns(id: string): boolean {
    return this.store.epochOf(id) !== undefined;
  }

  take(id: string): Promise<boolean> {
    return this.leases.take(id);
  }

  offered(): void {
    PgChannel.notify(this.db.pool, OFFERS, this.replicaId).catch((err: unknown) => {
      this.logger.warn({ err: String(err) }, "could not tell the replicas of offered sessions");
    });
  }

  /** A session of this replica finished or paused: room for another one offered. */
  freed(): void {
    void this.tick();
  }

  /** Takes the lease, claims what it can, and keeps doing so until `stop`. */
  async start(sessions: SessionManager): Promise<void> {
    this.sessions = sessions;
    await this.offers.listen(() => void this.tick());
    // Commands for the sessions this replica runs, sent by the replica a client reached; answered once durable.
    await this.relay.serve(async (id, tenant, action) => {
      await sessions.control(id, tenant, action);
      await sessions.durable();
    });
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /** Ends the lease and releases the sessions this replica still owns (call once they stopped running). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.ticking;
    await this.offers.close();
    await this.relay.close();
    await this.leases.leave().catch((err: unknown) => {
      this.logger.warn({ err: String(err) }, "could not hand sessions over; they move after the lease");
    });
  }

  private tick(): Promise<void> {
    if (this.ticking) {
      // Asked again while claiming (another offer): once more right after, so that none waits for the beat.
      this.again = true;
      return this.ticking;
    }
    if (this.stopped) return Promise.resolve();
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
            this.logger.info(
              { sessionId: session.id },
              "claimed a session (offered, or its owner's lease ran out)",
            );
            this.sessions?.adopt(session);
          }
        }
      } catch (err) {
        this.logger.warn({ err: String(err) }, "replica heartbeat failed");
      } finally {
        this.ticking = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.tick();
        }
      }
    })();
    return this.ticking;
  }
}
