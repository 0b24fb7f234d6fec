import { create } from "@bufbuild/protobuf";
import type { GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import {
  type ResourceEstimate,
  ResourceEstimateSchema,
} from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { estimateActivationBytes } from "@dmesh/spec";
import { defaultModel } from "../clients/model-service.js";
import type { ReplicaPool } from "../clients/replica-pool.js";
import { estimateDuration, shapeOf, type TimingSource } from "./duration-estimate.js";
import type { WorkflowDefinition } from "./workflow-definition.js";

const GENERATING = new Set(["generate", "hires", "refine"]);

/**
 * Resource estimates from the inference service's model metadata (component file sizes, native size), the
 * requested size, the shared activation estimate, and the step timings measured on this mesh. Without a
 * reachable replica the model part is 0 and says so by being 0.
 */
export class WorkflowEstimator {
  constructor(
    private readonly inference: ReplicaPool<typeof InferenceService>,
    private readonly timings?: TimingSource,
  ) {}

  async estimate(
    workflow: WorkflowDefinition,
    size: { width: number; height: number } | undefined,
    signal: AbortSignal,
    spec?: GenerationSpec,
  ): Promise<ResourceEstimate> {
    const generates = workflow.steps.filter((s) => GENERATING.has(s.kind));
    const models = new Set<string>();
    let modelBytes = 0n;
    let native = 1024;
    if (generates.length > 0) {
      try {
        const model = await defaultModel(this.inference, signal, 2000);
        modelBytes = (model?.components ?? []).reduce((n, c) => n + c.fileBytes, 0n);
        native = model?.nativeSize || native;
        if (model?.id) models.add(model.id);
      } catch {
        // No replica or no default model: the estimate covers what can be known.
      }
    }
    for (const step of workflow.steps) {
      const { upscaler, model } = step.params;
      if (typeof upscaler === "string" && upscaler !== "lanczos") models.add(upscaler);
      if (step.kind === "refine" && typeof model === "string") models.add(model);
    }
    const shape = shapeOf(spec, size);
    // The largest image a generation works on: a hires pass denoises at its scale.
    const scale = Math.max(
      1,
      ...generates.map((s) =>
        s.kind === "hires" ? (typeof s.params.scale === "number" ? s.params.scale : 2) : 1,
      ),
    );
    const width = (shape.width || native) * scale;
    const height = (shape.height || native) * scale;
    const duration = await estimateDuration(workflow, shape, this.timings, native);
    // UNet runs: each generating step's denoising steps, twice each (classifier-free guidance).
    const evaluations = generates.reduce(
      (n, s) => n + 2 * (typeof s.params.steps === "number" ? s.params.steps : shape.steps),
      0,
    );
    return create(ResourceEstimateSchema, {
      modelBytes,
      activationBytes: generates.length > 0 ? BigInt(estimateActivationBytes(width, height)) : 0n,
      unetEvaluations: evaluations,
      estimatedSeconds: duration.seconds,
      estimateSource: duration.source,
      models: [...models],
    });
  }
}
