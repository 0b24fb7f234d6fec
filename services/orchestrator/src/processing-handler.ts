import { clone, create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  SessionAction,
  SessionSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { WorkflowSchema } from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { InvalidArgumentError, type Logger, scopeFrom } from "@dmesh/runtime";
import type { BatchManager } from "./batches/batch-manager.js";
import { isTerminal, type SessionManager } from "./sessions/session-manager.js";
import type { CatalogEntry, WorkflowCatalog } from "./workflows/workflow-catalog.js";
import type { WorkflowEstimator } from "./workflows/workflow-estimator.js";

/** Transport for ProcessingService: request checks and proto mapping; the managers do the work. */
export class ProcessingHandler implements ServiceImpl<typeof ProcessingService> {
  constructor(
    private readonly workflows: WorkflowCatalog,
    private readonly estimator: WorkflowEstimator,
    private readonly sessions: SessionManager,
    private readonly batches: BatchManager,
    private readonly logger: Logger,
  ) {}

  async listWorkflows(_req: unknown, ctx: HandlerContext) {
    const workflows = await Promise.all(this.workflows.list().map((w) => this.describe(w, undefined, ctx)));
    return { workflows };
  }

  async getWorkflow(
    req: { workflowId: string; size?: { width: number; height: number } },
    ctx: HandlerContext,
  ) {
    return { workflow: await this.describe(this.workflows.get(req.workflowId), req.size, ctx) };
  }

  async *executeWorkflow(
    req: Parameters<ServiceImpl<typeof ProcessingService>["executeWorkflow"]>[0],
    ctx: HandlerContext,
  ) {
    // Without an explicit request_id the call's x-request-id is the session's: one id in every hop's logs.
    const { session } = this.sessions.submit({
      workflowId: req.workflowId,
      spec: req.spec,
      images: req.images,
      requestId: req.requestId || scopeFrom(ctx, this.logger).requestId,
      priority: req.priority,
    });
    let ended = false;
    try {
      for await (const event of this.sessions.watch(session.id, ctx.signal, true)) {
        yield { event };
        const state = event.session?.state ?? SessionState.UNSPECIFIED;
        ended = isTerminal(state) || state === SessionState.PAUSED;
      }
    } finally {
      // A client that leaves cancels its work unless it asked to detach.
      if (!ended && !req.detach) {
        try {
          this.sessions.control(session.id, SessionAction.CANCEL);
        } catch (err) {
          this.logger.debug({ sessionId: session.id, err: String(err) }, "session already finished");
        }
      }
    }
  }

  listSessions(req: { states: SessionState[]; batchId: string; pageSize: number; pageToken: string }) {
    const limit = pageSize(req.pageSize);
    const sessions = this.sessions.list(req.states, req.batchId, limit + 1, req.pageToken);
    const more = sessions.length > limit;
    const page = sessions.slice(0, limit);
    return { sessions: page, nextPageToken: more ? (page[page.length - 1]?.id ?? "") : "" };
  }

  getSession(req: { sessionId: string }) {
    return { session: this.sessions.get(required(req.sessionId, "session_id")) };
  }

  // Replies acknowledge a change only once it is on disk (`durable`), so a crash cannot undo what was told.
  async controlSession(req: { sessionId: string; action: SessionAction }) {
    const session = clone(
      SessionSchema,
      this.sessions.control(required(req.sessionId, "session_id"), req.action),
    );
    await this.sessions.durable();
    return { session };
  }

  async deleteSession(req: { sessionId: string }) {
    await this.sessions.delete(required(req.sessionId, "session_id"));
    await this.sessions.durable();
    return {};
  }

  async *watchSession(req: { sessionId: string }, ctx: HandlerContext) {
    for await (const event of this.sessions.watch(required(req.sessionId, "session_id"), ctx.signal))
      yield { event };
  }

  listBatches(req: { pageSize: number; pageToken: string }) {
    const limit = pageSize(req.pageSize);
    const batches = this.batches.list(req.pageToken, limit + 1);
    const page = batches.slice(0, limit);
    return { batches: page, nextPageToken: batches.length > limit ? (page[page.length - 1]?.id ?? "") : "" };
  }

  getBatch(req: { batchId: string }) {
    return { batch: this.batches.get(required(req.batchId, "batch_id")) };
  }

  async createBatch(req: Parameters<ServiceImpl<typeof ProcessingService>["createBatch"]>[0]) {
    const batch = this.batches.create(req);
    await this.sessions.durable();
    return { batch };
  }

  async *executeBatch(req: { batchId: string }, ctx: HandlerContext) {
    for await (const event of this.batches.execute(required(req.batchId, "batch_id"), ctx.signal))
      yield { event };
  }

  async controlBatch(req: Parameters<ServiceImpl<typeof ProcessingService>["controlBatch"]>[0]) {
    const batch = this.batches.control(required(req.batchId, "batch_id"), req.action);
    await this.sessions.durable();
    return { batch };
  }

  async deleteBatch(req: { batchId: string }) {
    await this.batches.delete(required(req.batchId, "batch_id"));
    await this.sessions.durable();
    return {};
  }

  private async describe(
    entry: CatalogEntry,
    size: { width: number; height: number } | undefined,
    ctx: HandlerContext,
  ) {
    const t = entry.template;
    return create(WorkflowSchema, {
      id: t.id,
      name: t.name,
      description: t.description,
      inputs: t.inputs.map((i) => ({ ...i })),
      requiredModels: [...t.requiredModels],
      steps: t.steps.map((s) => ({
        id: s.id,
        domain: s.domain,
        operation: s.mode ? `${s.operation}:${s.mode}` : s.operation,
        dependsOn: [...s.dependsOn],
        inputs: { ...s.inputs },
      })),
      estimate: await this.estimator.estimate(t, size, ctx.signal),
    });
  }
}

function required(value: string, field: string): string {
  if (!value) throw new InvalidArgumentError(field, "is required");
  return value;
}

function pageSize(size: number): number {
  if (size < 0 || size > 1000) throw new InvalidArgumentError("page_size", "must be in [0, 1000]");
  return size || 100;
}
