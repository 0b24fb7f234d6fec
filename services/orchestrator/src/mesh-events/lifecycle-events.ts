import type { Batch } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { MeshEventKind } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { type SessionEvent, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { tenantOfSession } from "../sessions/tenant.js";
import type { MeshEventHub } from "./mesh-event-hub.js";

const SESSION_DONE = new Set([SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED]);
const BATCH_DONE = new Set([BatchState.COMPLETED, BatchState.FAILED, BatchState.CANCELLED]);

/**
 * Session and batch lifecycle as mesh events: one per change of state (a session's state events also carry
 * its step and replica changes, which are not lifecycle).
 */
export class LifecycleEvents {
  private readonly sessionStates = new Map<string, SessionState>();
  private readonly batchStates = new Map<string, BatchState>();

  constructor(private readonly hub: MeshEventHub) {}

  /** For SessionEvents.onStateChange. */
  readonly onSession = (event: SessionEvent): void => {
    const session = event.session;
    if (!session) return;
    if (this.sessionStates.get(session.id) === session.state) return;
    if (SESSION_DONE.has(session.state)) this.sessionStates.delete(session.id);
    else this.sessionStates.set(session.id, session.state);
    this.hub.publish({
      kind: MeshEventKind.SESSION,
      detail: {
        case: "session",
        value: {
          sessionId: session.id,
          state: session.state,
          workflowId: session.workflowId,
          batchId: session.batchId,
          error: session.error,
          tenant: tenantOfSession(session),
        },
      },
    });
  };

  /** For BatchManager.onSave. */
  readonly onBatch = (batch: Batch): void => {
    if (this.batchStates.get(batch.id) === batch.state) return;
    if (BATCH_DONE.has(batch.state)) this.batchStates.delete(batch.id);
    else this.batchStates.set(batch.id, batch.state);
    this.hub.publish({
      kind: MeshEventKind.BATCH,
      detail: {
        case: "batch",
        value: {
          batchId: batch.id,
          state: batch.state,
          items: batch.items.length,
          completed: batch.completed,
          failed: batch.failed,
          cancelled: batch.cancelled,
          tenant: tenantOfSession(batch),
        },
      },
    });
  };
}
