import type { SessionAction } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";

/**
 * Which sessions this orchestrator replica runs, when several share one database (PostgreSQL). Without it
 * (SQLite) the one replica owns every session.
 */
export interface Ownership {
  /** This replica owns the session: it created, claimed or took it, and no other has taken it since. */
  owns(id: string): boolean;
  /**
   * Makes this replica the owner of a session no live replica runs (paused, finished, or its owner's lease
   * over); false when another live replica owns it and it is queued or running there.
   */
  take(id: string): Promise<boolean>;
  /** Sessions were created for any replica to claim: the replicas with room claim them now. */
  offered(): void;
  /** A session stopped running here: room to claim an offered one. */
  freed(): void;
  /**
   * Sends a control command to the live replica that runs the session, and resolves once it applied it
   * (throws its refusal, or UNAVAILABLE when none answers).
   */
  forward(id: string, tenant: string, action: SessionAction): Promise<void>;
}
