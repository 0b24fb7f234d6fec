import { randomUUID } from "node:crypto";
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow, type Value } from "@bufbuild/protobuf/wkt";
import type { GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { ImageInput } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  type Session,
  type SessionAction,
  type SessionEvent,
  SessionEventKind,
  SessionEventSchema,
  SessionSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { NotFoundError, quote, ResourceExhaustedError, UnavailableError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import type { GroupCommit } from "../store/group-commit.js";
import { FencedError } from "../store/postgres/pg-session-store.js";
import { newSession } from "../store/session-store.js";
import type { WorkflowCatalog } from "../workflows/workflow-catalog.js";
import { FairQueue } from "./fair-queue.js";
import type { Ownership } from "./ownership.js";
import { SessionCommitter } from "./session-committer.js";
import { decideControl } from "./session-control.js";
import type { SessionEvents } from "./session-events.js";
import {
  type CommitOptions,
  markFinished,
  type RunControl,
  type RunnerDeps,
  runSession,
} from "./session-runner.js";
import { SessionTraces } from "./session-traces.js";
import { checkSubmit } from "./submit-check.js";
import type { TenantQuota } from "./tenant-quotas.js";

export interface SessionLimits {
  /** Sessions executing at once across all replicas. */
  maxConcurrent: number;
  /** Sessions waiting, all tenants together; a submit beyond it gets RESOURCE_EXHAUSTED. */
  maxQueued: number;
  /** Each tenant's share: running, queued and batch items; everyone the whole mesh when unset. */
  quotaOf?: (tenant: string) => TenantQuota;
}

export interface SubmitRequest {
  /** Who submits: the session is theirs, and only they see it. */
  tenant: string;
  workflowId: string;
  spec: GenerationSpec | undefined;
  images: Record<string, ImageInput>;
  requestId: string;
  priority: number;
  batchId?: string;
  /** The workflow's scalar inputs. */
  inputs?: Record<string, Value>;
  /** A version to run (a batch's); 0 or unset = the newest. */
  workflowVersion?: number;
  callbackUrl?: string;
  /** Any orchestrator replica may run it (batch items spread this way); without replicas, ignored. */
  offer?: boolean;
}

// See `adopt`.
const ADOPTED_SEQUENCE_GAP = 1000n;

const TERMINAL = new Set([SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED]);

export function isTerminal(state: SessionState): boolean {
  return TERMINAL.has(state);
}

/**
 * The session lifecycle: submit (idempotent by request id; its checks in submit-check.ts), a bounded queue
 * fair across tenants (fair-queue.ts), bounded concurrency and per-tenant quotas, pause/resume/cancel/restart,
 * and recovery of whatever a crash interrupted. All state changes go through `commit` (session-committer.ts),
 * which stores them and tells watchers what a restart must find only once it is on disk. Every session
 * belongs to a tenant; asked for by another, it answers as one that does not exist.
 */
export class SessionManager {
  private readonly queue = new FairQueue();
  private readonly running = new Map<string, RunControl>();
  private readonly runningPerTenant = new Map<string, number>();
  private readonly live = new Map<string, Session>();
  /** Submits between their checks and their enqueue, by tenant: they count against the queue's limits. */
  private readonly admitting = new Map<string, number>();
  /** Submits under way by tenant and request id: a second one with the same id joins the first. */
  private readonly submitting = new Map<string, Promise<{ session: Session; existing: boolean }>>();
  /** Sessions this replica is taking over from another (one take per session at a time). */
  private readonly taking = new Map<string, Promise<boolean>>();
  private readonly committer: SessionCommitter;
  private closed = false;
  private readonly traces = new SessionTraces();

  constructor(
    private readonly deps: Omit<RunnerDeps, "commit">,
    private readonly events: SessionEvents,
    private readonly commits: GroupCommit,
    private readonly workflows: WorkflowCatalog,
    private readonly limits: SessionLimits,
    private readonly logger: Logger,
    /** Several replicas on one database: which sessions are this one's to run (all of them without). */
    private readonly ownership?: Ownership,
  ) {
    this.committer = new SessionCommitter(deps.store, commits, events, this.live);
  }

  /** Resolves once every change made so far is on disk: await it before acknowledging one to a client. */
  durable(): Promise<void> {
    return this.commits.sync();
  }

  /** Re-queues what was queued or running when the process stopped; running ones resume from checkpoints. */
  async recover(): Promise<{ requeued: number }> {
    let requeued = 0;
    for (const state of [SessionState.RUNNING, SessionState.QUEUED]) {
      for (const session of await this.deps.store.listByState(state)) {
        session.state = SessionState.QUEUED;
        this.commit(session, SessionEventKind.STATE, { persist: "durable" });
        this.enqueue(session);
        requeued++;
      }
    }
    this.pump();
    return { requeued };
  }

  /** A tenant's quota (the whole mesh's limits when no quotas are set). */
  quotaOf(tenant: string): TenantQuota {
    return (
      this.limits.quotaOf?.(tenant) ?? {
        running: this.limits.maxConcurrent,
        queued: this.limits.maxQueued,
        batchItems: Number.MAX_SAFE_INTEGER,
      }
    );
  }

  async submit(req: SubmitRequest): Promise<{ session: Session; existing: boolean }> {
    if (this.closed)
      throw new UnavailableError("the orchestrator is shutting down, submit again once it is back");
    if (!req.requestId) return this.submitNew(req);
    const key = `${req.tenant}\u0000${req.requestId}`;
    const under = this.submitting.get(key);
    if (under) {
      const { session } = await under;
      return { session, existing: true };
    }
    const submitted = (async () => {
      const existing = await this.deps.store.getByRequestId(req.tenant, req.requestId);
      if (existing) return { session: this.live.get(existing.id) ?? existing, existing: true };
      return this.submitNew(req);
    })();
    this.submitting.set(key, submitted);
    try {
      return await submitted;
    } finally {
      this.submitting.delete(key);
    }
  }

  private async submitNew(req: SubmitRequest): Promise<{ session: Session; existing: boolean }> {
    const workflow = await this.workflows.resolve(req.workflowId, req.workflowVersion ?? 0);
    const { spec, images, values } = await checkSubmit(
      workflow.definition,
      req,
      this.deps.artifacts,
      this.deps.inference.all(),
    );
    if (this.closed)
      throw new UnavailableError("the orchestrator is shutting down, submit again once it is back");
    const admitting = this.admittingOf(req.tenant);
    if (this.queue.size + this.admittingOf() >= this.limits.maxQueued) {
      throw new ResourceExhaustedError(
        `the queue is full (${this.limits.maxQueued} sessions waiting), try again later`,
      );
    }
    const { queued } = this.quotaOf(req.tenant);
    if (this.queue.sizeOf(req.tenant) + admitting >= queued) {
      throw new ResourceExhaustedError(
        `tenant "${req.tenant}" has ${queued} sessions waiting, its quota (TENANT_QUOTAS queued=${queued}); try again later`,
      );
    }
    const session = newSession({
      id: randomUUID(),
      tenant: req.tenant,
      workflowId: req.workflowId,
      spec,
      requestId: req.requestId,
      priority: req.priority,
      batchId: req.batchId ?? "",
      createdAt: timestampNow(),
      updatedAt: timestampNow(),
      sequence: 1n,
      workflowVersion: workflow.version,
      inputs: values,
      callbackUrl: req.callbackUrl ?? "",
    });
    const offered = req.offer === true && this.ownership !== undefined;
    this.admit(req.tenant, 1);
    try {
      await this.deps.store.create(session, images, { offered });
    } finally {
      this.admit(req.tenant, -1);
    }
    this.workflows.recordUse(req.workflowId);
    if (offered) {
      // Whichever replica has room claims it (this one included), and tells its events from there.
      const told = create(SessionEventSchema, {
        kind: SessionEventKind.STATE,
        session: clone(SessionSchema, session),
      });
      this.commits.afterSync(() => this.events.publish(told));
      this.ownership?.offered();
      return { session, existing: false };
    }
    this.live.set(session.id, session);
    const event = create(SessionEventSchema, {
      kind: SessionEventKind.STATE,
      session: clone(SessionSchema, session),
    });
    this.commits.afterSync(() => this.events.publish(event));
    this.traces.submitted(session.id);
    this.enqueue(session);
    this.pump();
    return { session, existing: false };
  }

  /** Submits of `tenant` (all tenants' when undefined) being admitted. */
  private admittingOf(tenant?: string): number {
    return this.admitting.get(tenant ?? "") ?? 0;
  }

  private admit(tenant: string, n: number): void {
    for (const key of [tenant, ""]) {
      const left = this.admittingOf(key) + n;
      if (left > 0) this.admitting.set(key, left);
      else this.admitting.delete(key);
    }
  }

  /** The tenant's session; another tenant's answers exactly as a missing one. */
  async get(id: string, tenant: string): Promise<Session> {
    const session = await this.find(id);
    if (!session || session.tenant !== tenant)
      throw new NotFoundError("session_id", `no session ${quote(id)}`);
    return session;
  }

  /**
   * The live session, or the stored one made live: whoever asks for an unfinished session while another
   * read of it is under way gets the same object, so that changes made meanwhile are never lost or doubled.
   */
  private async find(id: string): Promise<Session | undefined> {
    const live = this.live.get(id);
    if (live) return live;
    const stored = await this.deps.store.get(id);
    const now = this.live.get(id);
    if (now) return now;
    // Another replica's session is only read here: it runs, changes and tells it there.
    if (stored && !isTerminal(stored.state) && (this.ownership?.owns(id) ?? true)) this.live.set(id, stored);
    return stored;
  }

  /**
   * A session this replica claimed after its owner's lease ran out: queued here, to resume from its stored
   * steps and checkpoint. Its events are numbered past anything the dead owner may have told without
   * storing (progress), so that watchers take them as newer.
   */
  adopt(session: Session): void {
    if (this.closed || this.running.has(session.id) || this.live.has(session.id)) return;
    session.state = SessionState.QUEUED;
    session.sequence += ADOPTED_SEQUENCE_GAP;
    this.commit(session, SessionEventKind.STATE, { persist: "durable" });
    this.enqueue(session);
    this.pump();
  }

  /** Another replica owns the session now: stop running or queueing it here, without a word or a write. */
  abandon(id: string): void {
    const control = this.running.get(id);
    if (control) {
      control.lost = true;
      control.abort.abort(new Error("another orchestrator replica owns this session now"));
    }
    this.dequeue(id);
    this.live.delete(id);
  }

  /** How many more sessions this replica could start now (what it may claim from others). */
  room(): number {
    if (this.closed) return 0;
    return Math.max(0, this.limits.maxConcurrent - this.running.size - this.queue.size);
  }

  /**
   * The session, made this replica's when another replica left it (paused or finished there, or its lease
   * over); refused while another live replica runs or queues it.
   */
  private async ownedHere(session: Session): Promise<Session | undefined> {
    const id = session.id;
    if (!this.ownership || this.ownership.owns(id)) return session;
    let taking = this.taking.get(id);
    if (!taking) {
      taking = this.ownership.take(id).finally(() => this.taking.delete(id));
      this.taking.set(id, taking);
    }
    if (!(await taking)) return undefined;
    const taken = this.live.get(id) ?? (await this.deps.store.get(id)) ?? session;
    if (!isTerminal(taken.state)) this.live.set(id, this.live.get(id) ?? taken);
    return this.live.get(id) ?? taken;
  }

  /** Snapshot, then events until the session ends (or pauses, when `untilPaused`), or the signal aborts. */
  async watch(
    id: string,
    tenant: string,
    signal: AbortSignal,
    untilPaused = false,
  ): Promise<AsyncGenerator<SessionEvent>> {
    const snapshot = await this.get(id, tenant);
    const isLast = (e: SessionEvent) => {
      const state = e.session?.state ?? SessionState.UNSPECIFIED;
      return isTerminal(state) || (untilPaused && state === SessionState.PAUSED);
    };
    // The snapshot too is told only once it is on disk.
    return this.events.watch(snapshot, signal, isLast, () => this.commits.sync());
  }

  async control(id: string, tenant: string, action: SessionAction): Promise<Session> {
    // While shutting down nothing changes: running sessions are left for the next start to resume.
    const found = await this.get(id, tenant);
    const session = await this.ownedHere(found);
    if (!session && this.ownership) {
      // Queued or running on another live replica: the command goes there, and the answer is its outcome.
      await this.ownership.forward(id, tenant, action);
      return (await this.deps.store.get(id)) ?? found;
    }
    if (!session) throw new UnavailableError("the session's replica is not known; try again in a moment");
    if (this.closed)
      throw new UnavailableError("the orchestrator is shutting down, try again once it is back");
    const control = this.running.get(id);
    switch (decideControl(session.state, action, control !== undefined)) {
      case "pause-queued":
        this.dequeue(id);
        session.state = SessionState.PAUSED;
        this.commit(session, SessionEventKind.STATE, { persist: "durable" });
        break;
      case "pause-running":
        if (!control) break;
        control.pauseRequested = true;
        if (control.replica) {
          const replica = this.deps.inference.all().find((r) => r.address === control.replica);
          void replica?.client.pauseGeneration({ generationId: id }).catch((err: unknown) => {
            this.logger.warn({ sessionId: id, err: String(err) }, "pause request failed");
          });
        }
        break;
      case "resume":
        session.state = SessionState.QUEUED;
        this.commit(session, SessionEventKind.STATE, { persist: "durable" });
        this.enqueue(session);
        this.pump();
        break;
      case "cancel-running":
        if (!control) break;
        control.cancelRequested = true;
        control.abort.abort(new Error("cancelled by request"));
        break;
      case "cancel-idle":
        this.dequeue(id);
        markFinished(session, SessionState.CANCELLED);
        this.commit(session, SessionEventKind.STATE, { persist: "durable" });
        break;
      case "restart":
        this.dequeue(id);
        // Marked QUEUED before the reset is awaited, so that a second RESTART meanwhile is not a second run.
        session.state = SessionState.QUEUED;
        await this.deps.store.resetProgress(id);
        session.error = "";
        session.progress = 0;
        session.denoiseStep = 0;
        session.attempts = 0;
        session.artifactIds = [];
        session.timings = [];
        session.rejections = [];
        this.commit(session, SessionEventKind.STATE, { persist: "durable" });
        this.enqueue(session);
        this.pump();
        break;
    }
    return session;
  }

  /** Deletes the session, its inputs, checkpoint and artifacts (files no other session shares). */
  async delete(id: string, tenant: string): Promise<number> {
    await this.get(id, tenant);
    const control = this.running.get(id);
    if (control) {
      control.cancelRequested = true;
      control.abort.abort(new Error("session deleted"));
      const deadline = Date.now() + 10_000;
      while (this.running.has(id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    }
    this.dequeue(id);
    const artifactIds = await this.deps.artifacts.idsOfSession(id);
    const deleted = this.deps.store.delete(id);
    this.live.delete(id);
    await deleted;
    // Files go once their rows' deletion is on disk: a crash never leaves a row without its file.
    await this.commits.sync();
    return this.deps.artifacts.removeUnreferenced(artifactIds);
  }

  /**
   * Drops a deleted artifact from the session's list (the rest of the session stays), stored and told to
   * watchers once on disk. A session deleted meanwhile is left alone.
   */
  async forgetArtifact(sessionId: string, artifactId: string): Promise<void> {
    const session = await this.find(sessionId);
    if (!session?.artifactIds.includes(artifactId)) return;
    session.artifactIds = session.artifactIds.filter((id) => id !== artifactId);
    this.commit(session, SessionEventKind.STATE, { persist: "durable" });
  }

  async list(
    tenant: string,
    states: SessionState[],
    batchId: string,
    limit: number,
    after: string,
  ): Promise<Session[]> {
    const stored = await this.deps.store.list({ tenant, states, batchId, limit, after });
    return stored.map((s) => this.live.get(s.id) ?? s);
  }

  counts(): { queued: number; running: number } {
    return { queued: this.queue.size, running: this.running.size };
  }

  /**
   * Stops taking work; running sessions are left in RUNNING so that the next start resumes them from their
   * checkpoints, and watchers' streams end with UNAVAILABLE so that they watch again there.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const control of this.running.values()) control.abort.abort(new Error("orchestrator shutting down"));
    const deadline = Date.now() + 5_000;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.events.close(
      new UnavailableError("the orchestrator is shutting down, watch the session again once it is back"),
    );
  }

  private commit(session: Session, kind: SessionEventKind, options: CommitOptions = {}): void {
    this.committer.commit(session, kind, options);
  }

  private enqueue(session: Session): void {
    this.queue.push(session.id, session.tenant, session.priority);
  }

  private dequeue(id: string): void {
    this.queue.remove(id);
  }

  private runningOf(tenant: string): number {
    return this.runningPerTenant.get(tenant) ?? 0;
  }

  private pump(): void {
    const mayRun = (tenant: string) => this.runningOf(tenant) < this.quotaOf(tenant).running;
    while (!this.closed && this.running.size < this.limits.maxConcurrent) {
      const next = this.queue.take((tenant) => this.runningOf(tenant), mayRun);
      if (!next) break;
      void this.execute(next.id);
    }
  }

  private startRunning(session: Session, control: RunControl): void {
    this.running.set(session.id, control);
    this.runningPerTenant.set(session.tenant, this.runningOf(session.tenant) + 1);
  }

  private stopRunning(session: Session): void {
    if (!this.running.delete(session.id)) return;
    const n = this.runningOf(session.tenant) - 1;
    if (n > 0) this.runningPerTenant.set(session.tenant, n);
    else this.runningPerTenant.delete(session.tenant);
  }

  private async execute(id: string): Promise<void> {
    // What is queued is live (submit, resume, restart and recover make it so): taken without waiting, so
    // that pump counts it running at once.
    const session = this.live.get(id);
    if (!session) return;
    const control: RunControl = {
      abort: new AbortController(),
      pauseRequested: false,
      cancelRequested: false,
      replica: undefined,
    };
    this.startRunning(session, control);
    session.state = SessionState.RUNNING;
    session.error = "";
    // Cached: after a crash RUNNING and QUEUED recover the same way.
    this.commit(session, SessionEventKind.STATE, { persist: "cached" });
    try {
      // The version it was submitted with, even after an update (0: a session from before versions).
      const workflow = await this.workflows.resolve(session.workflowId, session.workflowVersion);
      const outcome = await this.traces.run(session.id, session.workflowId, () =>
        runSession(session, workflow, control, {
          ...this.deps,
          commit: (s, kind, options) => this.commit(s, kind, options),
        }),
      );
      if (outcome === "completed") markFinished(session, SessionState.COMPLETED);
      else if (outcome === "paused") session.state = SessionState.PAUSED;
      else markFinished(session, SessionState.CANCELLED);
    } catch (err) {
      if (control.lost || err instanceof FencedError) {
        // Adopted by another replica (this one was cut off or frozen past its lease): it carries on there.
        this.logger.warn({ sessionId: id, err: String(err) }, "session taken over by another replica");
        this.stopRunning(session);
        this.live.delete(id);
        this.pump();
        return;
      }
      if (this.closed && !control.cancelRequested) {
        // Shutting down: leave it RUNNING in the database; recover() resumes it.
        this.stopRunning(session);
        return;
      }
      if (control.cancelRequested) markFinished(session, SessionState.CANCELLED);
      else {
        const message = err instanceof Error ? err.message : String(err);
        this.logger.warn({ sessionId: id, err: message }, "session failed");
        markFinished(session, SessionState.FAILED, message);
      }
    }
    this.stopRunning(session);
    if (control.lost) {
      this.live.delete(id);
      this.pump();
      return;
    }
    this.commit(session, SessionEventKind.STATE, { persist: "durable" });
    this.pump();
    this.ownership?.freed();
  }
}
