import { type Client, createClient } from "@connectrpc/connect";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { type Model, ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import type { Replica, ReplicaPool } from "./replica-pool.js";

/** ModelService on an inference replica (every inference process serves it beside InferenceService). */
export function modelServiceOf(replica: Replica<typeof InferenceService>): Client<typeof ModelService> {
  return createClient(ModelService, replica.transport);
}

/** The default model's metadata, from any inference replica. */
export async function defaultModel(
  inference: ReplicaPool<typeof InferenceService>,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<Model | undefined> {
  const { model } = await modelServiceOf(inference.pick()).getModel({ id: "" }, { signal, timeoutMs });
  return model;
}
