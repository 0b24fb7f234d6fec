import {
  type GenerationSpec,
  SchedulerKind,
  TimestepSpacing,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import {
  checkSchedulerOptions,
  familyByClassName,
  type SchedulerFamily,
  validateSchedulerSpec,
} from "@dmesh/spec";
import { modelFromAnyReplica } from "../clients/model-service.js";
import type { Replica } from "../clients/replica-pool.js";

/** How long submit waits for a replica to name a model's scheduler before leaving the check to it. */
const ASK_TIMEOUT_MS = 2000;

/**
 * Options a spec gives without a kind (`karras_sigmas`, `spacing`) apply to the model's own scheduler, which
 * only an inference replica knows: ask a healthy one (ModelService.GetModel) and check them against that family
 * at submit, so that an option the model's scheduler lacks is the caller's INVALID_ARGUMENT, not a failed
 * session. With no replica to ask, the inference service's own check at Generate stays the guard.
 */
export async function checkOwnSchedulerOptions(
  spec: GenerationSpec | undefined,
  replicas: readonly Replica<typeof InferenceService>[],
  prefix = "spec",
): Promise<void> {
  const scheduler = spec?.scheduler;
  if (!scheduler || scheduler.kind !== SchedulerKind.UNSPECIFIED) return;
  if (scheduler.karrasSigmas === undefined && scheduler.spacing === TimestepSpacing.UNSPECIFIED) return;
  // An unknown model or a busy replica: Generate says so.
  const model = await modelFromAnyReplica(replicas, spec?.models?.base ?? "", ASK_TIMEOUT_MS);
  if (!model) return;
  // A class the mesh lacks runs as Euler (the inference service's substitution), so it is checked as Euler.
  const family = (familyByClassName(model.defaultScheduler) ??
    familyByClassName("EulerDiscreteScheduler")) as SchedulerFamily;
  checkSchedulerOptions(
    validateSchedulerSpec(scheduler, `${prefix}.scheduler`),
    family,
    `${prefix}.scheduler`,
    `model "${model.id}"'s own scheduler ${familyByClassName(model.defaultScheduler) ? "" : "(Euler in place of its own) "}`,
  );
}

/** The same check for a batch's items: each distinct model and kindless options asked once. */
export async function checkItemsOwnSchedulerOptions(
  specs: readonly GenerationSpec[],
  replicas: readonly Replica<typeof InferenceService>[],
  prefix: (index: number) => string,
): Promise<void> {
  const asked = new Set<string>();
  for (const [i, spec] of specs.entries()) {
    const s = spec.scheduler;
    if (!s || s.kind !== SchedulerKind.UNSPECIFIED) continue;
    const key = JSON.stringify([spec.models?.base ?? "", s.karrasSigmas ?? null, s.spacing]);
    if (asked.has(key)) continue;
    asked.add(key);
    await checkOwnSchedulerOptions(spec, replicas, prefix(i));
  }
}
