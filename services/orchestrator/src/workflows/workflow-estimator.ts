import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import {
  type ResourceEstimate,
  ResourceEstimateSchema,
} from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { DEFAULTS, estimateActivationBytes } from "@dmesh/spec";
import type { ReplicaPool } from "../mesh/replica-pool.js";
import type { WorkflowDefinition } from "./workflow-definition.js";

/**
 * Resource estimates from the inference service's model metadata (component file sizes, native size) and
 * the requested size. Without a reachable replica the model part is 0 and says so by being 0.
 */
export class WorkflowEstimator {
  constructor(private readonly inference: ReplicaPool<typeof InferenceService>) {}

  async estimate(
    workflow: WorkflowDefinition,
    size: { width: number; height: number } | undefined,
    signal: AbortSignal,
  ): Promise<ResourceEstimate> {
    const generates = workflow.steps.filter((s) => ["generate", "hires", "refine"].includes(s.kind));
    if (generates.length === 0) return create(ResourceEstimateSchema);
    let modelBytes = 0n;
    let native = 1024;
    try {
      const replica = this.inference.pick();
      const models = createClient(ModelService, replica.transport);
      const { model } = await models.getModel({ id: "" }, { signal, timeoutMs: 2000 });
      modelBytes = (model?.components ?? []).reduce((n, c) => n + c.fileBytes, 0n);
      native = model?.nativeSize || native;
    } catch {
      // No replica or no default model: the estimate covers what can be known.
    }
    const width = size?.width || native;
    const height = size?.height || native;
    const evaluations = generates.length * DEFAULTS.steps * 2;
    return create(ResourceEstimateSchema, {
      modelBytes,
      activationBytes: BigInt(estimateActivationBytes(width, height)),
      unetEvaluations: evaluations,
    });
  }
}
