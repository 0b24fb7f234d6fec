import { createClient, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ConditioningService,
  type PreprocessControlRequest,
} from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { callOptions, type Logger, scopeFrom } from "@dmesh/runtime";
import { forwardToReplica } from "./clients/replica-forward.js";
import type { ReplicaPool } from "./clients/replica-pool.js";

/**
 * ConditioningService on the public port: only PreprocessControl, so that a client (the web page) previews the
 * control map a ControlNet unit will use. The inference replica validates the image and the preprocessor;
 * Tokenize and EncodePrompt stay inside the mesh (UNIMPLEMENTED here).
 */
export class PublicConditioningHandler implements Partial<ServiceImpl<typeof ConditioningService>> {
  constructor(
    private readonly inference: ReplicaPool<typeof InferenceService>,
    private readonly logger: Logger,
  ) {}

  preprocessControl(req: PreprocessControlRequest, ctx: HandlerContext) {
    const options = callOptions(scopeFrom(ctx, this.logger));
    return forwardToReplica(this.inference, (r) =>
      createClient(ConditioningService, r.transport).preprocessControl(req, options),
    );
  }
}
