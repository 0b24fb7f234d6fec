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

/**
 * A model's metadata from the first healthy replica of `replicas`; undefined when none is healthy, or it does not
 * answer within `timeoutMs` or knows no such model (callers then leave the question to the replica that runs it).
 */
export async function modelFromAnyReplica(
  replicas: readonly Replica<typeof InferenceService>[],
  id: string,
  timeoutMs: number,
): Promise<Model | undefined> {
  const replica = replicas.find((r) => r.healthy);
  if (!replica) return undefined;
  try {
    return (await modelServiceOf(replica).getModel({ id }, { timeoutMs })).model;
  } catch {
    return undefined;
  }
}
