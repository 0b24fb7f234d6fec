import { randomUUID } from "node:crypto";
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import {
  type Batch,
  BatchAction,
  type BatchEvent,
  BatchEventSchema,
  type BatchItem,
  BatchItemSchema,
  BatchSchema,
  BatchState,
} from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import type { CreateBatchRequest } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  SessionAction,
  type SessionEvent,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { AsyncChannel } from "@dmesh/runtime/async-channel";
import {
  asDomainError,
  ErrorCode,
  FailedPreconditionError,
  NotFoundError,
  quote,
  ResourceExhaustedError,
} from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { type GenerationModeName, validateGenerationSpec } from "@dmesh/spec";
import type { ReplicaPool } from "../clients/replica-pool.js";
import { checkItemsOwnSchedulerOptions } from "../sessions/own-scheduler-check.js";
import type { SessionEvents } from "../sessions/session-events.js";
import { isTerminal, type SessionManager } from "../sessions/session-manager.js";
import { firstGenerationMode } from "../sessions/submit-check.js";
import type { BatchStore } from "../store/batch-store.js";
import type { GroupCommit } from "../store/group-commit.js";
import type { WorkflowCatalog } from "../workflows/workflow-catalog.js";
import { expandBatch, MAX_BATCH_ITEMS } from "./expand-batch.js";
import { nextGroup, type UnetProfile, unetProfile } from "./unet-groups.js";

// How soon a batch none of whose sessions is queued tries again after the session queue was full.
const QUEUE_FULL_RETRY_MS = 500;

/** The inference replicas whose sessions batch items are placed on, a group of compatible items at a time. */
export interface BatchPlacement {
  readonly replicas: ReplicaPool<typeof InferenceService>;
  /** Most images one group holds (a replica's own limits and device memory may hold fewer). */
  readonly maxGroupImages: number;
}

/**
 * Batches: many sessions of one workflow, created up front and fed to the session queue a window at a time
 * (so a 1,000-item batch never floods the queue), with per-item state kept in step with their sessions.
 * With a placement, items are fed in groups: compatible items placed together on one inference replica, as
 * many as it can denoise in one UNet run (its device's free memory and its UNet batch limit), so that it
 * merges their steps.
 */
export class BatchManager {
  private readonly listeners = new Map<string, Set<(event: BatchEvent) => void>>();
  private readonly active = new Set<string>();
  /** Per running batch, each item's grouping profile (specs do not change; resolved once). */
  private readonly profiles = new Map<string, UnetProfile[]>();
  private readonly saveListeners = new Set<(batch: Batch) => void>();
  /** Per batch (or request id being created), the last change under way: changes of one run one at a time. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: BatchStore,
    private readonly sessions: SessionManager,
    private readonly events: SessionEvents,
    private readonly commits: GroupCommit,
    private readonly workflows: WorkflowCatalog,
    private readonly window: number,
    private readonly logger: Logger,
    private readonly placement?: BatchPlacement,
    /** Several replicas on one database: the one replica that feeds each batch (and alone writes it). */
    private readonly feeders?: {
      claim(batchId: string): Promise<boolean>;
      release(batchId: string): Promise<void>;
    },
  ) {
    const follow = (event: SessionEvent, remote: boolean) => {
      const session = event.session;
      if (!session?.batchId) return;
      // Items run on every replica, but only the one feeding the batch writes it (else one replica's save of
      // the batch would overwrite another's).
      if ((remote || this.feeders) && !this.active.has(session.batchId)) return;
      // A placement its session never used (cancelled or failed before it reached inference) is dropped.
      if (isTerminal(session.state)) this.placement?.replicas.unpin(session.requestId);
      const { batchId, id, state, error } = session;
      void this.serially(batchId, () => this.onItemChanged(batchId, id, state, error)).catch((err: unknown) =>
        this.logger.error({ batchId, err: String(err) }, "batch item change not stored"),
      );
    };
    events.onStateChange((event) => follow(event, false));
    events.onRemoteStateChange((event) => follow(event, true));
  }

  /**
   * Runs `change` after the changes of `key` before it: each reads the batch, changes it and stores it, and
   * with the store's answers awaited in between, two at once would overwrite each other.
   */
  private serially<T>(key: string, change: () => Promise<T>): Promise<T> {
    const before = this.chains.get(key) ?? Promise.resolve();
    const done = before.then(change, change);
    const settled = done.then(
      () => {},
      () => {},
    );
    this.chains.set(key, settled);
    void settled.then(() => {
      if (this.chains.get(key) === settled) this.chains.delete(key);
    });
    return done;
  }

  /** `feed`, queued behind the batch's other changes, from a timer or an event (failures are logged). */
  private feedLater(id: string): void {
    void this.serially(id, () => this.feed(id)).catch((err: unknown) =>
      this.logger.error({ batchId: id, err: String(err) }, "batch feeding failed"),
    );
  }

  /** Every change of every batch, once it is on disk (mesh events follow batches this way). */
  onSave(listener: (batch: Batch) => void): void {
    this.saveListeners.add(listener);
  }

  /** A batch of `tenant`'s, as many items as its quota allows; idempotent by request id. */
  async create(req: CreateBatchRequest, tenant: string): Promise<Batch> {
    if (!req.requestId) return this.createNew(req, tenant);
    return this.serially(`request\u0000${tenant}\u0000${req.requestId}`, async () => {
      const existing = await this.store.getByRequestId(tenant, req.requestId);
      return existing ?? this.createNew(req, tenant);
    });
  }

  private async createNew(req: CreateBatchRequest, tenant: string): Promise<Batch> {
    // Another orchestrator replica on the same database may have made the workflow.
    const workflow = await this.workflows.resolve(req.workflowId);
    const mode = firstGenerationMode(workflow.definition) ?? "txt2img";
    const specs = expandBatch(req.base, req.items, req.axes);
    const { batchItems } = this.sessions.quotaOf(tenant);
    if (specs.length > batchItems) {
      throw new ResourceExhaustedError(
        `a batch of ${specs.length} items is over tenant "${tenant}"'s quota (TENANT_QUOTAS batch_items=${batchItems})`,
      );
    }
    const prefix = (i: number) => (req.items.length > 0 ? `items[${i}]` : `batch item ${i}`);
    for (const [i, spec] of specs.entries()) validateGenerationSpec(spec, prefix(i), mode);
    await checkItemsOwnSchedulerOptions(specs, this.placement?.replicas.all() ?? [], prefix);
    const batch = create(BatchSchema, {
      id: randomUUID(),
      tenant,
      workflowId: req.workflowId,
      workflowVersion: workflow.version,
      state: BatchState.CREATED,
      priority: req.priority,
      requestId: req.requestId,
      // Checked by the handler against the allow-list.
      callbackUrl: req.callbackUrl,
      createdAt: timestampNow(),
      updatedAt: timestampNow(),
      items: specs.map((spec, index) =>
        create(BatchItemSchema, { index, spec, state: SessionState.UNSPECIFIED }),
      ),
    });
    await this.store.create(batch);
    return batch;
  }

  /** The tenant's batch; another tenant's answers exactly as a missing one. */
  async get(id: string, tenant: string): Promise<Batch> {
    const batch = await this.store.get(id);
    if (!batch || batch.tenant !== tenant) throw new NotFoundError("batch_id", `no batch ${quote(id)}`);
    return batch;
  }

  list(tenant: string, after: string, limit: number): Promise<Batch[]> {
    return this.store.list(tenant, after, limit);
  }

  /** Starts (or keeps running) the batch and streams its events until it finishes or the caller leaves. */
  async *execute(id: string, tenant: string, signal: AbortSignal): AsyncGenerator<BatchEvent> {
    const batch = await this.get(id, tenant);
    if (batch.state === BatchState.CANCELLED)
      throw new FailedPreconditionError("the batch was cancelled", "batch_id");
    const channel = new AsyncChannel<BatchEvent>();
    const listener = (event: BatchEvent) => channel.push(event);
    const set = this.listeners.get(id) ?? new Set();
    this.listeners.set(id, set);
    set.add(listener);
    // The caller leaving ends the stream quietly; the orchestrator shutting down ends it with its reason.
    const leave = () => channel.close();
    const shutDown = () => channel.close(this.events.closed.reason);
    signal.addEventListener("abort", leave);
    this.events.closed.addEventListener("abort", shutDown);
    try {
      await this.startIfFree(id);
      // The snapshot is told once on disk; a later change comes as an event, the end included.
      const snapshot = await this.get(id, tenant);
      await this.commits.sync();
      yield create(BatchEventSchema, { batch: snapshot, itemIndex: -1 });
      if (isBatchDone(snapshot) || signal.aborted) return;
      if (this.events.closed.aborted) throw this.events.closed.reason;
      // Fed by another replica: followed in the database until it ends, or until that replica's lease is
      // over and this one takes the feeding over.
      let last = snapshot;
      while (!this.active.has(id) && !signal.aborted && !this.events.closed.aborted) {
        await pause(FOLLOW_MS, signal);
        if (await this.startIfFree(id)) break;
        const now = await this.get(id, tenant);
        if (changed(last, now)) yield create(BatchEventSchema, { batch: now, itemIndex: -1 });
        last = now;
        if (isBatchDone(now)) return;
      }
      if (signal.aborted) return;
      if (this.events.closed.aborted) throw this.events.closed.reason;
      for await (const event of channel) {
        yield event;
        if (event.batch && isBatchDone(event.batch)) return;
      }
    } finally {
      signal.removeEventListener("abort", leave);
      this.events.closed.removeEventListener("abort", shutDown);
      set.delete(listener);
    }
  }

  /** Starts feeding the batch here unless it is done, fed here already, or fed by another live replica. */
  private startIfFree(id: string): Promise<boolean> {
    return this.serially(id, async () => {
      const now = await this.store.get(id);
      if (!now || this.active.has(id) || isBatchDone(now)) return false;
      if (this.feeders && !(await this.feeders.claim(id))) return false;
      // Taken over from a replica that died: its last changes of the items may not have reached the batch.
      if (this.feeders) await this.reconcile(now);
      if (isBatchDone(now)) await this.save(now, -1);
      else await this.start(now);
      return true;
    });
  }

  control(id: string, tenant: string, action: BatchAction): Promise<Batch> {
    return this.serially(id, () => this.controlNow(id, tenant, action));
  }

  private async controlNow(id: string, tenant: string, action: BatchAction): Promise<Batch> {
    const batch = await this.get(id, tenant);
    if (action === BatchAction.CANCEL) {
      batch.state = BatchState.CANCELLED;
      await this.save(batch, -1);
      for (const item of batch.items) {
        if (item.sessionId && !isTerminal(item.state)) {
          try {
            await this.sessions.control(item.sessionId, tenant, SessionAction.CANCEL);
          } catch (err) {
            this.logger.debug({ batchId: id, err: String(err) }, "item already finished");
          }
        }
      }
      return this.get(id, tenant);
    }
    if (action === BatchAction.RETRY_FAILED) {
      for (const item of batch.items) {
        if (item.state === SessionState.FAILED || item.state === SessionState.CANCELLED) {
          item.sessionId = "";
          item.state = SessionState.UNSPECIFIED;
          item.error = "";
          item.group = 0;
        }
      }
      batch.state = BatchState.CREATED;
      await this.save(batch, -1);
      if (!this.feeders || (await this.feeders.claim(id))) await this.start(batch);
      return this.get(id, tenant);
    }
    throw new FailedPreconditionError("action must be CANCEL or RETRY_FAILED", "action");
  }

  async delete(id: string, tenant: string): Promise<void> {
    const batch = await this.get(id, tenant);
    if (batch.state !== BatchState.CANCELLED && !isBatchDone(batch))
      await this.control(id, tenant, BatchAction.CANCEL);
    for (const item of (await this.get(id, tenant)).items) {
      if (item.sessionId) await this.sessions.delete(item.sessionId, tenant).catch(() => {});
    }
    await this.serially(id, async () => {
      this.active.delete(id);
      this.profiles.delete(id);
      await this.store.delete(id);
    });
  }

  /**
   * Resumes batches a restart interrupted. Their sessions recover on their own (call this after the
   * session manager's recover); the items are first brought in line with them, since a crash can fall
   * between a session's change and its batch's save, then the feeding restarts.
   */
  async recover(): Promise<void> {
    for (const batch of await this.store.list(undefined, "", 10_000)) {
      if (batch.state !== BatchState.RUNNING) continue;
      await this.serially(batch.id, async () => {
        await this.reconcile(batch);
        if (isBatchDone(batch)) await this.save(batch, -1);
        else await this.start(batch);
      });
    }
  }

  /**
   * Items take the state of their sessions; an item without one adopts a session of this batch made for its
   * index (submitted just before a crash, its batch save lost) instead of getting a second one: an unfinished
   * one, else a completed one (another replica may have run it to the end meanwhile). A failed or cancelled
   * one is what a retry leaves behind, and is not adopted.
   */
  private async reconcile(batch: Batch): Promise<void> {
    const claimed = new Set(batch.items.map((i) => i.sessionId).filter(Boolean));
    const orphans = new Map<number, string>();
    const completed = new Map<number, string>();
    for (const session of await this.sessions.list(batch.tenant, [], batch.id, MAX_BATCH_ITEMS * 10, "")) {
      const index = itemIndexOf(batch.id, session.requestId);
      if (index === undefined || claimed.has(session.id)) continue;
      if (!isTerminal(session.state)) orphans.set(index, session.id);
      else if (session.state === SessionState.COMPLETED) completed.set(index, session.id);
    }
    for (const [index, id] of completed) if (!orphans.has(index)) orphans.set(index, id);
    for (const item of batch.items) {
      item.sessionId ||= orphans.get(item.index) ?? "";
      if (!item.sessionId) continue;
      try {
        const session = await this.sessions.get(item.sessionId, batch.tenant);
        item.state = session.state;
        item.error = session.error;
      } catch {
        item.state = SessionState.CANCELLED;
        item.error = "its session was deleted";
      }
    }
    this.count(batch);
  }

  /** Call in the batch's turn (`serially`): it stores the batch, and its feeding comes next in line. */
  private async start(batch: Batch): Promise<void> {
    this.active.add(batch.id);
    batch.state = BatchState.RUNNING;
    await this.save(batch, -1);
    this.feedLater(batch.id);
  }

  /**
   * Submits unsubmitted items while fewer than `window` of this batch's sessions are unfinished: a group at a
   * time, each item of a group placed on the group's replica.
   */
  private async feed(id: string): Promise<void> {
    if (!this.active.has(id) || this.events.closed.aborted) return;
    const batch = await this.store.get(id);
    if (!batch || batch.state !== BatchState.RUNNING) return;
    let open = batch.items.filter((i) => i.sessionId && !isTerminal(i.state)).length;
    const profiles = this.profilesOf(batch);
    const profileOf = (item: BatchItem) => profiles?.[item.index];
    let waiting = batch.items.filter((i) => !i.sessionId && i.state === SessionState.UNSPECIFIED);
    let group = batch.items.reduce((n, i) => Math.max(n, i.group), 0);
    feeding: for (let first = waiting[0]; first && open < this.window; first = waiting[0]) {
      const profile = profileOf(first);
      const placement =
        this.placement && profile
          ? this.placement.replicas.placeGroup(
              profile.bytesPerImage,
              profile.model,
              this.placement.maxGroupImages,
            )
          : undefined;
      const members = placement ? nextGroup(waiting, profileOf, placement, this.window - open) : [first];
      waiting = waiting.filter((i) => !members.includes(i));
      group++;
      for (const item of members) {
        const requestId = `${batch.id}/${item.index}/${randomUUID()}`;
        if (placement) this.placement?.replicas.pin(requestId, placement.address);
        try {
          const { session } = await this.sessions.submit({
            tenant: batch.tenant,
            workflowId: batch.workflowId,
            workflowVersion: batch.workflowVersion,
            spec: item.spec,
            images: {},
            requestId,
            priority: batch.priority,
            batchId: batch.id,
            // Several orchestrator replicas: whichever has room runs it (the batch spreads over them).
            offer: true,
          });
          item.sessionId = session.id;
          item.state = session.state;
          item.group = group;
          open++;
        } catch (err) {
          this.placement?.replicas.unpin(requestId);
          const code = asDomainError(err)?.code ?? ErrorCode.Internal;
          if (code === ErrorCode.Unavailable) break feeding; // shutting down: the next start feeds on
          if (code !== ErrorCode.ResourceExhausted) {
            // The request itself is refused (the spec was checked at create, so this is rare): the item fails.
            item.state = SessionState.FAILED;
            item.error = err instanceof Error ? err.message : String(err);
            continue;
          }
          // A full queue: the next change of one of this batch's sessions feeds again, or, with none of them
          // in the queue to change, a timer does.
          if (open === 0) setTimeout(() => this.feedLater(id), QUEUE_FULL_RETRY_MS).unref();
          this.logger.debug({ batchId: id, err: (err as Error).message }, "batch item not submitted yet");
          break feeding;
        }
      }
    }
    this.finishIfDone(batch);
    await this.save(batch, -1);
  }

  /** Each item's grouping profile, by index; undefined when the workflow generates nothing. */
  private profilesOf(batch: Batch): UnetProfile[] | undefined {
    const mode = this.placement && this.generateMode(batch.workflowId);
    if (!mode) return undefined;
    let profiles = this.profiles.get(batch.id);
    if (!profiles) {
      profiles = batch.items.map((i) =>
        unetProfile(validateGenerationSpec(i.spec, `items[${i.index}]`, mode)),
      );
      this.profiles.set(batch.id, profiles);
    }
    return profiles;
  }

  /** The mode of the workflow's generate step, or undefined when it has none. */
  private generateMode(workflowId: string): GenerationModeName | undefined {
    return firstGenerationMode(this.workflows.get(workflowId).definition);
  }

  private async onItemChanged(
    batchId: string,
    sessionId: string,
    state: SessionState,
    error: string,
  ): Promise<void> {
    const batch = await this.store.get(batchId);
    if (!batch) return;
    const item = batch.items.find((i) => i.sessionId === sessionId);
    if (!item || item.state === state) return;
    item.state = state;
    item.error = error;
    this.finishIfDone(batch);
    await this.save(batch, item.index);
    if (isTerminal(state)) setImmediate(() => this.feedLater(batchId));
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
      this.profiles.delete(batch.id);
      this.feeders?.release(batch.id).catch((err: unknown) => {
        this.logger.warn({ batchId: batch.id, err: String(err) }, "batch feeder not released");
      });
    }
  }

  /** Stores the batch (the next change of it reads what this one wrote) and tells its listeners once on disk. */
  private async save(batch: Batch, itemIndex: number): Promise<void> {
    batch.updatedAt = timestampNow();
    const saved = this.store.save(batch);
    this.commits.track(saved);
    const event = create(BatchEventSchema, { batch: clone(BatchSchema, batch), itemIndex });
    this.commits.afterSync(() => {
      for (const listener of this.listeners.get(batch.id) ?? []) listener(event);
      if (event.batch) for (const listener of this.saveListeners) listener(event.batch);
    });
    await saved;
  }
}

// How often a replica that does not feed a batch reads it for its watchers.
const FOLLOW_MS = 250;

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function changed(before: Batch, after: Batch): boolean {
  return (
    before.state !== after.state ||
    before.completed !== after.completed ||
    before.failed !== after.failed ||
    before.cancelled !== after.cancelled ||
    before.updatedAt?.seconds !== after.updatedAt?.seconds ||
    before.updatedAt?.nanos !== after.updatedAt?.nanos
  );
}

/** The item index a batch session was made for, from the request id `feed` gives it. */
function itemIndexOf(batchId: string, requestId: string): number | undefined {
  const [owner, index] = requestId.split("/");
  return owner === batchId && index !== undefined && /^\d+$/.test(index) ? Number(index) : undefined;
}

function isBatchDone(batch: Batch): boolean {
  return [BatchState.COMPLETED, BatchState.FAILED, BatchState.CANCELLED].includes(batch.state);
}
