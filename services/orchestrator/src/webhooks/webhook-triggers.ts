import { toJsonString } from "@bufbuild/protobuf";
import { type Batch, BatchSchema, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import {
  type SessionEvent,
  SessionSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { Logger } from "@dmesh/runtime/logger";
import type { WebhookDispatcher } from "./webhook-dispatcher.js";

const SESSION_ENDS = new Set([SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED]);
const BATCH_ENDS = new Set([BatchState.COMPLETED, BatchState.FAILED, BatchState.CANCELLED]);

/**
 * When a session or batch that names a callback URL ends, its final state (the proto's JSON) becomes a
 * delivery. The delivery id names the end (the session's sequence; the batch's state and counts), so the same
 * end told twice is delivered once, and a restarted session's next end is delivered again.
 */
export function webhookTriggers(dispatcher: WebhookDispatcher, logger: Logger) {
  const enqueue = (delivery: Parameters<WebhookDispatcher["enqueue"]>[0]) =>
    void dispatcher.enqueue(delivery).catch((err: unknown) => {
      logger.error({ delivery: delivery.id, err: String(err) }, "webhook not stored");
    });
  return {
    onSession(event: SessionEvent): void {
      const session = event.session;
      if (!session?.callbackUrl || !SESSION_ENDS.has(session.state)) return;
      enqueue({
        id: `session:${session.id}:${session.sequence}`,
        tenant: session.tenant,
        url: session.callbackUrl,
        event: "session",
        body: toJsonString(SessionSchema, session),
      });
    },
    onBatch(batch: Batch): void {
      if (!batch.callbackUrl || !BATCH_ENDS.has(batch.state)) return;
      enqueue({
        id: `batch:${batch.id}:${batch.state}:${batch.completed}:${batch.failed}:${batch.cancelled}`,
        tenant: batch.tenant,
        url: batch.callbackUrl,
        event: "batch",
        body: toJsonString(BatchSchema, batch),
      });
    },
  };
}
