import { SessionAction, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { FailedPreconditionError, InvalidArgumentError } from "@dmesh/runtime/errors";

/** What a control action does to a session in its state: the session manager carries it out. */
export type ControlDecision =
  /** Out of the queue, PAUSED at once. */
  | "pause-queued"
  /** Asked to stop at the next denoising step (its checkpoint resumes it). */
  | "pause-running"
  /** Back into the queue. */
  | "resume"
  /** Aborted where it runs; it ends CANCELLED. */
  | "cancel-running"
  /** Out of the queue (or from PAUSED), CANCELLED at once. */
  | "cancel-idle"
  /** Progress, outputs and artifacts dropped, back into the queue. */
  | "restart";

const TERMINAL = new Set([SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED]);

/**
 * The session state machine: which transition `action` is for a session in `state` (`running` when it is
 * executing now), or FAILED_PRECONDITION saying why none (field "action").
 */
export function decideControl(state: SessionState, action: SessionAction, running: boolean): ControlDecision {
  const refuse = (what: string): never => {
    throw new FailedPreconditionError(
      `cannot ${what} a session that is ${SessionState[state].toLowerCase()}`,
      "action",
    );
  };
  switch (action) {
    case SessionAction.PAUSE:
      if (state === SessionState.QUEUED) return "pause-queued";
      return running ? "pause-running" : refuse("pause");
    case SessionAction.RESUME:
      return state === SessionState.PAUSED ? "resume" : refuse("resume");
    case SessionAction.CANCEL:
      if (TERMINAL.has(state)) return refuse("cancel");
      return running ? "cancel-running" : "cancel-idle";
    case SessionAction.RESTART:
      return running ? refuse("restart (cancel it first)") : "restart";
    default:
      throw new InvalidArgumentError("action", "must be PAUSE, RESUME, CANCEL or RESTART");
  }
}
