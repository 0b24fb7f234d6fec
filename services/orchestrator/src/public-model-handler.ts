import { createClient, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import {
  type GetModelRequest,
  type ListAdaptersRequest,
  type ListModelsRequest,
  ModelService,
} from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { callOptions, type Logger, scopeFrom } from "@dmesh/runtime";
import { forwardToReplica } from "./clients/replica-forward.js";
import type { ReplicaPool } from "./clients/replica-pool.js";

/**
 * ModelService on the public port, read-only: clients in Kubernetes reach only the orchestrator, and list the
 * models and adapters they may name through it. Each call goes to one healthy inference replica (replicas
 * share MODELS_DIR in a deployment). LoadModel and UnloadModel are not served here (UNIMPLEMENTED): which
 * models stay resident is each replica's own LRU, and the pool's placement, not a caller's; a load through
 * one door would warm one replica among many. Cleanup (admin) unloads idle models mesh-wide.
 */
export class PublicModelHandler implements Partial<ServiceImpl<typeof ModelService>> {
  constructor(
    private readonly inference: ReplicaPool<typeof InferenceService>,
    private readonly logger: Logger,
  ) {}

  listModels(req: ListModelsRequest, ctx: HandlerContext) {
    const options = callOptions(scopeFrom(ctx, this.logger));
    return forwardToReplica(this.inference, (r) =>
      createClient(ModelService, r.transport).listModels(req, options),
    );
  }

  getModel(req: GetModelRequest, ctx: HandlerContext) {
    const options = callOptions(scopeFrom(ctx, this.logger));
    return forwardToReplica(this.inference, (r) =>
      createClient(ModelService, r.transport).getModel(req, options),
    );
  }

  listAdapters(req: ListAdaptersRequest, ctx: HandlerContext) {
    const options = callOptions(scopeFrom(ctx, this.logger));
    return forwardToReplica(this.inference, (r) =>
      createClient(ModelService, r.transport).listAdapters(req, options),
    );
  }
}
