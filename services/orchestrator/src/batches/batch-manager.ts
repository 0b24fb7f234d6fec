import { randomUUID } from "node:crypto";
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  type Batch,
  BatchAction,
  type BatchEvent,
  BatchEventSchema,
  BatchItemSchema,
  BatchSchema,
  BatchState,
} from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import type { CreateBatchRequest } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { SessionAction, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { DomainError, FailedPreconditionError, type Logger, NotFoundError } from "@dmesh/runtime";
import { validateGenerationSpec } from "@dmesh/spec";
import type { SessionEvents } from "../sessions/session-events.js";
import { isTerminal, type SessionManager } from "../sessions/session-manager.js";
import type { BatchStore } from "../store/batch-store.js";
import type { GroupCommit } from "../store/group-commit.js";
import type { WorkflowCatalog } from "../workflows/workflow-catalog.js";
import { expandBatch, MAX_BATCH_ITEMS } from "./expand-batch.js";

// How soon a batch none of whose sessions is queued tries again after the session queue was full.
const QUEUE_FULL_RETRY_MS = 500;

/**
 * Batches: many sessions of one workflow, created up front and fed to the session queue a window at a time
 * (so a 1,000-item batch never floods the queue), with per-item state kept in step with their sessions.
 */
export class BatchManager {
  private readonly listeners = new Map<string, Set<(event: BatchEvent) => void>>();
  private readonly active = new Set<string>();

  constructor(
    private readonly store: BatchStore,
    private readonly sessions: SessionManager,
    private readonly events: SessionEvents,
    private readonly commits: GroupCommit,
    private readonly workflows: WorkflowCatalog,
    private readonly window: number,
    private readonly logger: Logger,
  ) {
    events.onStateChange((event) => {
      const session = event.session;
      if (session?.batchId) this.onItemChanged(session.batchId, session.id, session.state, session.error);
    });
  }

  create(req: CreateBatchRequest): Batch {
    if (req.requestId) {
      const existing = this.store.getByRequestId(req.requestId);
      if (existing) return existing;
    }
    const workflow = this.workflows.get(req.workflowId);
    const mode = workflow.template.steps.find((s) => s.operation === "generate")?.mode ?? "txt2img";
    const specs = expandBatch(req.base, req.items, req.axes);
    for (const [i, spec] of specs.entries()) {
      validateGenerationSpec(spec, req.items.length > 0 ? `items[${i}]` : `batch item ${i}`, mode);
    }
    const batch = create(BatchSchema, {
      id: randomUUID(),
      workflowId: req.workflowId,
      state: BatchState.CREATED,
      priority: req.priority,
      requestId: req.requestId,
      createdAt: timestampNow(),
      updatedAt: timestampNow(),
      items: specs.map((spec, index) =>
        create(BatchItemSchema, { index, spec, state: SessionState.UNSPECIFIED }),
      ),
    });
    this.store.create(batch);
    return batch;
  }

  get(id: string): Batch {
    const batch = this.store.get(id);
    if (!batch) throw new NotFoundError("batch_id", `no batch ${id}`);
    return batch;
  }

  list(after: string, limit: number): Batch[] {
    return this.store.list(after, limit);
  }

  /** Starts (or keeps running) the batch and streams its events until it finishes or the caller leaves. */
  async *execute(id: string, signal: AbortSignal): AsyncGenerator<BatchEvent> {
    const batch = this.get(id);
    if (batch.state === BatchState.CANCELLED)
      throw new FailedPreconditionError("the batch was cancelled", "batch_id");
    const pending: BatchEvent[] = [];
    let wake: (() => void) | undefined;
    const listener = (event: BatchEvent) => {
      pending.push(event);
      wake?.();
    };
    const set = this.listeners.get(id) ?? new Set();
    this.listeners.set(id, set);
    set.add(listener);
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    this.events.closed.addEventListener("abort", onAbort);
    try {
      if (!this.active.has(id) && !isBatchDone(batch)) this.start(batch);
      // The snapshot is told once on disk; a later change comes as an event, the end included.
      const snapshot = this.get(id);
      await this.commits.sync();
      yield create(BatchEventSchema, { batch: snapshot, itemIndex: -1 });
      if (isBatchDone(snapshot)) return;
      while (!signal.aborted) {
        if (this.events.closed.aborted) throw this.events.closed.reason;
        const event = pending.shift();
        if (!event) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        yield event;
        if (event.batch && isBatchDone(event.batch)) return;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.events.closed.removeEventListener("abort", onAbort);
      set.delete(listener);
    }
  }

  control(id: string, action: BatchAction): Batch {
    const batch = this.get(id);
    if (action === BatchAction.CANCEL) {
      batch.state = BatchState.CANCELLED;
      this.save(batch, -1);
      for (const item of batch.items) {
        if (item.sessionId && !isTerminal(item.state)) {
          try {
            this.sessions.control(item.sessionId, SessionAction.CANCEL);
          } catch (err) {
            this.logger.debug({ batchId: id, err: String(err) }, "item already finished");
          }
        }
      }
      return this.get(id);
    }
    if (action === BatchAction.RETRY_FAILED) {
      for (const item of batch.items) {
        if (item.state === SessionState.FAILED || item.state === SessionState.CANCELLED) {
          item.sessionId = "";
          item.state = SessionState.UNSPECIFIED;
          item.error = "";
        }
      }
      batch.state = BatchState.CREATED;
      this.save(batch, -1);
      this.start(batch);
      return this.get(id);
    }
    throw new FailedPreconditionError("action must be CANCEL or RETRY_FAILED", "action");
  }

  async delete(id: string): Promise<void> {
    const batch = this.get(id);
    if (batch.state !== BatchState.CANCELLED && !isBatchDone(batch)) this.control(id, BatchAction.CANCEL);
    for (const item of this.get(id).items) {
      if (item.sessionId) await this.sessions.delete(item.sessionId).catch(() => {});
    }
    this.active.delete(id);
    this.store.delete(id);
  }

  /**
   * Resumes batches a restart interrupted. Their sessions recover on their own (call this after the
   * session manager's recover); the items are first brought in line with them, since a crash can fall
   * between a session's change and its batch's save, then the feeding restarts.
   */
  recover(): void {
    for (const batch of this.store.list("", 10_000)) {
      if (batch.state !== BatchState.RUNNING) continue;
      this.reconcile(batch);
      if (isBatchDone(batch)) this.save(batch, -1);
      else this.start(batch);
    }
  }

  /**
   * Items take the state of their sessions; an item without one adopts an unfinished session of this batch
   * made for its index (submitted just before a crash, its batch save lost) instead of getting a second one.
   */
  private reconcile(batch: Batch): void {
    const claimed = new Set(batch.items.map((i) => i.sessionId).filter(Boolean));
    const orphans = new Map<number, string>();
    for (const session of this.sessions.list([], batch.id, MAX_BATCH_ITEMS * 10, "")) {
      const index = itemIndexOf(batch.id, session.requestId);
      if (index !== undefined && !claimed.has(session.id) && !isTerminal(session.state))
        orphans.set(index, session.id);
    }
    for (const item of batch.items) {
      item.sessionId ||= orphans.get(item.index) ?? "";
      if (!item.sessionId) continue;
      try {
        const session = this.sessions.get(item.sessionId);
        item.state = session.state;
        item.error = session.error;
      } catch {
        item.state = SessionState.CANCELLED;
        item.error = "its session was deleted";
      }
    }
    this.count(batch);
  }

  private start(batch: Batch): void {
    this.active.add(batch.id);
    batch.state = BatchState.RUNNING;
    this.save(batch, -1);
    this.feed(batch.id);
  }

  /** Submits unsubmitted items while fewer than `window` of this batch's sessions are unfinished. */
  private feed(id: string): void {
    if (!this.active.has(id) || this.events.closed.aborted) return;
    const batch = this.store.get(id);
    if (!batch || batch.state !== BatchState.RUNNING) return;
    let open = batch.items.filter((i) => i.sessionId && !isTerminal(i.state)).length;
    for (const item of batch.items) {
      if (open >= this.window) break;
      if (item.sessionId) continue;
      try {
        const { session } = this.sessions.submit({
          workflowId: batch.workflowId,
          spec: item.spec,
          images: {},
          requestId: `${batch.id}/${item.index}/${randomUUID()}`,
          priority: batch.priority,
          batchId: batch.id,
        });
        item.sessionId = session.id;
        item.state = session.state;
        open++;
      } catch (err) {
        const code = err instanceof DomainError ? err.code : Code.Internal;
        if (code === Code.Unavailable) break; // shutting down: the next start feeds on
        if (code !== Code.ResourceExhausted) {
          // The request itself is refused (the spec was checked at create, so this is rare): the item fails.
          item.state = SessionState.FAILED;
          item.error = err instanceof Error ? err.message : String(err);
          continue;
        }
        // A full queue: the next change of one of this batch's sessions feeds again, or, with none of them
        // in the queue to change, a timer does.
        if (open === 0) setTimeout(() => this.feed(id), QUEUE_FULL_RETRY_MS).unref();
        this.logger.debug({ batchId: id, err: (err as Error).message }, "batch item not submitted yet");
        break;
      }
    }
    this.finishIfDone(batch);
    this.save(batch, -1);
  }

  private onItemChanged(batchId: string, sessionId: string, state: SessionState, error: string): void {
    const batch = this.store.get(batchId);
    if (!batch) return;
    const item = batch.items.find((i) => i.sessionId === sessionId);
    if (!item || item.state === state) return;
    item.state = state;
    item.error = error;
    this.finishIfDone(batch);
    this.save(batch, item.index);
    if (isTerminal(state)) setImmediate(() => this.feed(batchId));
  }

  private count(batch: Batch): void {
    batch.completed = batch.items.filter((i) => i.state === SessionState.COMPLETED).length;
    batch.failed = batch.items.filter((i) => i.state === SessionState.FAILED).length;
    batch.cancelled = batch.items.filter((i) => i.state === SessionState.CANCELLED).length;
  }

  /** Counts the items and, once every one has finished, finishes a running batch. */
  private finishIfDone(batch: Batch): void {
    this.count(batch);
    if (batch.state === BatchState.RUNNING && batch.items.every((i) => isTerminal(i.state))) {
      batch.state = batch.failed > 0 ? BatchState.FAILED : BatchState.COMPLETED;
      this.active.delete(batch.id);
    }
  }

  private save(batch: Batch, itemIndex: number): void {
    batch.updatedAt = timestampNow();
    this.store.save(batch);
    const event = create(BatchEventSchema, { batch: clone(BatchSchema, batch), itemIndex });
    this.commits.afterSync(() => {
      for (const listener of this.listeners.get(batch.id) ?? []) listener(event);
    });
  }
}

/** The item index a batch session was made for, from the request id `feed` gives it. */
function itemIndexOf(batchId: string, requestId: string): number | undefined {
  const [owner, index] = requestId.split("/");
  return owner === batchId && index !== undefined && /^\d+$/.test(index) ? Number(index) : undefined;
}

function isBatchDone(batch: Batch): boolean {
  return [BatchState.COMPLETED, BatchState.FAILED, BatchState.CANCELLED].includes(batch.state);
}
