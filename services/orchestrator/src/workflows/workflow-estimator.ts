import { create } from "@bufbuild/protobuf";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import {
  type ResourceEstimate,
  ResourceEstimateSchema,
} from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { DEFAULTS, estimateActivationBytes } from "@dmesh/spec";
import { defaultModel } from "../clients/model-service.js";
import type { ReplicaPool } from "../clients/replica-pool.js";
import type { WorkflowTemplate } from "./templates.js";

/**
 * Resource estimates from the inference service's model metadata (component file sizes, native size) and
 * the requested size. Without a reachable replica the model part is 0 and says so by being 0.
 */
export class WorkflowEstimator {
  constructor(private readonly inference: ReplicaPool<typeof InferenceService>) {}

  async estimate(
    template: WorkflowTemplate,
    size: { width: number; height: number } | undefined,
    signal: AbortSignal,
  ): Promise<ResourceEstimate> {
    const generates = template.steps.filter((s) => s.operation === "generate");
    if (generates.length === 0) return create(ResourceEstimateSchema);
    let modelBytes = 0n;
    let native = 1024;
    try {
      const model = await defaultModel(this.inference, signal, 2000);
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
