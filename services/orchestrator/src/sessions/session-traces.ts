import { currentTraceContext, inSpan, type TraceContext } from "@dmesh/runtime/tracing";

/**
 * Submits whose trace context is kept at most (one that never runs, cancelled in the queue, stays until pushed
 * out); beyond it the oldest sessions' runs start traces of their own.
 */
const MAX_KEPT = 10_000;

/**
 * Carries a session's trace from the call that submitted it to its run, which starts later, from the queue:
 * the run's span is a child of the submitting call's, so one trace goes from the client's call through every
 * step to inference and postprocess. A session recovered after a restart, or resumed, starts a trace of its own.
 */
export class SessionTraces {
  private readonly parents = new Map<string, TraceContext>();

  /** Keeps the active trace context (the submitting call's) for the session's run. */
  submitted(sessionId: string): void {
    const parent = currentTraceContext();
    if (!parent) return;
    if (this.parents.size >= MAX_KEPT) {
      const oldest = this.parents.keys().next().value;
      if (oldest !== undefined) this.parents.delete(oldest);
    }
    this.parents.set(sessionId, parent);
  }

  /** Runs the session's work in its span. */
  run<T>(sessionId: string, workflowId: string, work: () => Promise<T>): Promise<T> {
    const parent = this.parents.get(sessionId);
    this.parents.delete(sessionId);
    return inSpan(
      `session ${workflowId}`,
      { "dmesh.session_id": sessionId, "dmesh.workflow_id": workflowId },
      work,
      parent,
    );
  }
}
