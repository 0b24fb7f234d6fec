import { createClient } from "@connectrpc/connect";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { type Model, ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import type { ReplicaPool } from "./replica-pool.js";

/** The default model's metadata, from any inference replica (which also serves ModelService). */
export async function defaultModel(
  inference: ReplicaPool<typeof InferenceService>,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<Model | undefined> {
  const models = createClient(ModelService, inference.pick().transport);
  const { model } = await models.getModel({ id: "" }, { signal, timeoutMs });
  return model;
}
