import { clone } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { BatchAction } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import type { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  SessionAction,
  SessionSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { Workflow } from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { InvalidArgumentError, type Logger, scopeFrom, tenantOf } from "@dmesh/runtime";
import { checkId, checkName, requiredId } from "@dmesh/spec";
import { audit } from "./audit-log.js";
import type { BatchManager } from "./batches/batch-manager.js";
import { isTerminal, type SessionManager } from "./sessions/session-manager.js";
import type { WebhookPolicy } from "./webhooks/webhook-policy.js";
import { definitionFromProto, workflowToProto } from "./workflows/definition-proto.js";
import type { CatalogEntry, WorkflowCatalog } from "./workflows/workflow-catalog.js";
import type { WorkflowEstimator } from "./workflows/workflow-estimator.js";

/**
 * Transport for ProcessingService: request checks (ids bounded before anything looks them up) and proto
 * mapping; the managers do the work, for the caller's tenant.
 */
export class ProcessingHandler implements ServiceImpl<typeof ProcessingService> {
  constructor(
    private readonly workflows: WorkflowCatalog,
    private readonly estimator: WorkflowEstimator,
    private readonly sessions: SessionManager,
    private readonly batches: BatchManager,
    private readonly webhooks: WebhookPolicy,
    private readonly logger: Logger,
  ) {}

  async listWorkflows(_req: unknown, ctx: HandlerContext) {
    const workflows = await Promise.all(this.workflows.list().map((w) => this.describe(w, undefined, ctx)));
    return { workflows };
  }

  async getWorkflow(
    req: {
      workflowId: string;
      size?: { width: number; height: number };
      version: number;
      spec?: GenerationSpec;
    },
    ctx: HandlerContext,
  ) {
    const id = checkId(req.workflowId, "workflow_id");
    if (req.version < 0) throw new InvalidArgumentError("version", "must be 0 (the newest) or a version");
    return { workflow: await this.describe(this.workflows.get(id, req.version), req.size, ctx, req.spec) };
  }

  // Workflow definitions are mesh-wide: the door lets only admin keys call these when API keys are on.
  async createWorkflow(req: { workflow?: Workflow }, ctx: HandlerContext) {
    const entry = await this.workflows.create(definitionFromProto(req.workflow));
    audit(scopeFrom(ctx, this.logger).logger, tenantOf(ctx), "workflow.create", entry.definition.id);
    return { workflow: await this.describe(entry, undefined, ctx) };
  }

  async updateWorkflow(req: { workflow?: Workflow }, ctx: HandlerContext) {
    const entry = await this.workflows.update(definitionFromProto(req.workflow));
    audit(scopeFrom(ctx, this.logger).logger, tenantOf(ctx), "workflow.update", entry.definition.id);
    return { workflow: await this.describe(entry, undefined, ctx) };
  }

  async deleteWorkflow(req: { workflowId: string }, ctx: HandlerContext) {
    const id = requiredId(req.workflowId, "workflow_id");
    await this.workflows.remove(id);
    audit(scopeFrom(ctx, this.logger).logger, tenantOf(ctx), "workflow.delete", id);
    return {};
  }

  async *executeWorkflow(
    req: Parameters<ServiceImpl<typeof ProcessingService>["executeWorkflow"]>[0],
    ctx: HandlerContext,
  ) {
    const tenant = tenantOf(ctx);
    checkId(req.workflowId, "workflow_id");
    checkId(req.requestId, "request_id");
    for (const name of Object.keys(req.images)) checkName(name, "images");
    for (const name of Object.keys(req.inputs)) checkName(name, "inputs");
    // Without an explicit request_id the call's x-request-id is the session's: one id in every hop's logs.
    const { session } = await this.sessions.submit({
      tenant,
      workflowId: req.workflowId,
      spec: req.spec,
      images: req.images,
      requestId: req.requestId || scopeFrom(ctx, this.logger).requestId,
      priority: req.priority,
      inputs: req.inputs,
      callbackUrl: this.webhooks.check(req.callbackUrl, tenant),
    });
    let ended = false;
    try {
      for await (const event of await this.sessions.watch(session.id, tenant, ctx.signal, true)) {
        yield { event };
        const state = event.session?.state ?? SessionState.UNSPECIFIED;
        ended = isTerminal(state) || state === SessionState.PAUSED;
      }
    } finally {
      // A client that leaves cancels its work unless it asked to detach.
      if (!ended && !req.detach) {
        try {
          await this.sessions.control(session.id, tenant, SessionAction.CANCEL);
          audit(scopeFrom(ctx, this.logger).logger, tenant, "session.cancel", session.id);
        } catch (err) {
          this.logger.debug({ sessionId: session.id, err: String(err) }, "session already finished");
        }
      }
    }
  }

  async listSessions(
    req: { states: SessionState[]; batchId: string; pageSize: number; pageToken: string },
    ctx: HandlerContext,
  ) {
    const limit = pageSize(req.pageSize);
    const batchId = checkId(req.batchId, "batch_id");
    const after = checkId(req.pageToken, "page_token");
    const sessions = await this.sessions.list(tenantOf(ctx), req.states, batchId, limit + 1, after);
    const more = sessions.length > limit;
    const page = sessions.slice(0, limit);
    return { sessions: page, nextPageToken: more ? (page[page.length - 1]?.id ?? "") : "" };
  }

  async getSession(req: { sessionId: string }, ctx: HandlerContext) {
    return { session: await this.sessions.get(requiredId(req.sessionId, "session_id"), tenantOf(ctx)) };
  }

  // Replies acknowledge a change only once it is on disk (`durable`), so a crash cannot undo what was told.
  async controlSession(req: { sessionId: string; action: SessionAction }, ctx: HandlerContext) {
    const id = requiredId(req.sessionId, "session_id");
    const tenant = tenantOf(ctx);
    const session = clone(SessionSchema, await this.sessions.control(id, tenant, req.action));
    await this.sessions.durable();
    audit(scopeFrom(ctx, this.logger).logger, tenant, `session.${actionName(SessionAction, req.action)}`, id);
    return { session };
  }

  async deleteSession(req: { sessionId: string }, ctx: HandlerContext) {
    const id = requiredId(req.sessionId, "session_id");
    const tenant = tenantOf(ctx);
    await this.sessions.delete(id, tenant);
    await this.sessions.durable();
    audit(scopeFrom(ctx, this.logger).logger, tenant, "session.delete", id);
    return {};
  }

  async *watchSession(req: { sessionId: string }, ctx: HandlerContext) {
    const id = requiredId(req.sessionId, "session_id");
    for await (const event of await this.sessions.watch(id, tenantOf(ctx), ctx.signal)) yield { event };
  }

  async listBatches(req: { pageSize: number; pageToken: string }, ctx: HandlerContext) {
    const limit = pageSize(req.pageSize);
    const batches = await this.batches.list(tenantOf(ctx), checkId(req.pageToken, "page_token"), limit + 1);
    const page = batches.slice(0, limit);
    return { batches: page, nextPageToken: batches.length > limit ? (page[page.length - 1]?.id ?? "") : "" };
  }

  async getBatch(req: { batchId: string }, ctx: HandlerContext) {
    return { batch: await this.batches.get(requiredId(req.batchId, "batch_id"), tenantOf(ctx)) };
  }

  async createBatch(
    req: Parameters<ServiceImpl<typeof ProcessingService>["createBatch"]>[0],
    ctx: HandlerContext,
  ) {
    checkId(req.workflowId, "workflow_id");
    checkId(req.requestId, "request_id");
    const tenant = tenantOf(ctx);
    req.callbackUrl = this.webhooks.check(req.callbackUrl, tenant);
    const batch = await this.batches.create(req, tenant);
    await this.sessions.durable();
    return { batch };
  }

  async *executeBatch(req: { batchId: string }, ctx: HandlerContext) {
    const id = requiredId(req.batchId, "batch_id");
    for await (const event of this.batches.execute(id, tenantOf(ctx), ctx.signal)) yield { event };
  }

  async controlBatch(
    req: Parameters<ServiceImpl<typeof ProcessingService>["controlBatch"]>[0],
    ctx: HandlerContext,
  ) {
    const id = requiredId(req.batchId, "batch_id");
    const tenant = tenantOf(ctx);
    const batch = await this.batches.control(id, tenant, req.action);
    await this.sessions.durable();
    audit(scopeFrom(ctx, this.logger).logger, tenant, `batch.${actionName(BatchAction, req.action)}`, id);
    return { batch };
  }

  async deleteBatch(req: { batchId: string }, ctx: HandlerContext) {
    const id = requiredId(req.batchId, "batch_id");
    const tenant = tenantOf(ctx);
    await this.batches.delete(id, tenant);
    await this.sessions.durable();
    audit(scopeFrom(ctx, this.logger).logger, tenant, "batch.delete", id);
    return {};
  }

  private async describe(
    entry: CatalogEntry,
    size: { width: number; height: number } | undefined,
    ctx: HandlerContext,
    spec?: GenerationSpec,
  ) {
    const workflow = workflowToProto(entry, this.workflows.usageOf(entry.definition.id));
    workflow.estimate = await this.estimator.estimate(entry.definition, size, ctx.signal, spec);
    return workflow;
  }
}

/** `CANCEL` → "cancel", for audit lines. */
function actionName(values: Record<number, string>, action: number): string {
  return (values[action] ?? String(action)).toLowerCase();
}

function pageSize(size: number): number {
  if (size < 0 || size > 1000) throw new InvalidArgumentError("page_size", "must be in [0, 1000]");
  return size || 100;
}
