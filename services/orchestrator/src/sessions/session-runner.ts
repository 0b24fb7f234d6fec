import { create, toJson } from "@bufbuild/protobuf";
import { timestampNow, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { type Image, ImageSchema } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import type { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  ImageRejectionSchema,
  type Session,
  SessionEventKind,
  type SessionState,
  SessionState as State,
  StepTimingSchema,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { FailedPreconditionError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { inSpan } from "@dmesh/runtime/tracing";
import type { ReplicaPool } from "../clients/replica-pool.js";
import { ReplicaStepMesh } from "../clients/replica-step-mesh.js";
import { retryPolicy } from "../clients/retry-policy.js";
import { workflowStepSeconds } from "../orchestrator-metrics.js";
import type { ArtifactStore } from "../store/artifact-store.js";
import type { SessionStore } from "../store/session-store.js";
import {
  estimateDuration,
  recordTiming,
  shapeOf,
  type TimingSource,
} from "../workflows/duration-estimate.js";
import { STEP_KINDS } from "../workflows/step-kinds.js";
import { parseReference } from "../workflows/validate-definition.js";
import type { CatalogEntry } from "../workflows/workflow-catalog.js";
import type { JsonValue, StepDefinition } from "../workflows/workflow-definition.js";
import { encodingOf, mediaTypeOf } from "./media-type.js";
import {
  type StepContext,
  StepInterrupted,
  type StepMesh,
  type WorkflowImage,
} from "./steps/step-context.js";
import { STEP_RUNNERS } from "./steps/step-runners.js";

/** How the manager steers a running session. */
export interface RunControl {
  readonly abort: AbortController;
  pauseRequested: boolean;
  cancelRequested: boolean;
  /** Inference replica generating for it now. */
  replica: string | undefined;
  /** Another orchestrator replica owns the session now: this one stops without a word or a write. */
  lost?: boolean;
}

/**
 * How a commit treats the session: "durable" (stored, and told to watchers once on disk: what a client is
 * told and must survive a power cut), "cached" (stored and told at once: progress a restart redoes), or
 * "none" (told only). Either way nothing is told before what was committed ahead of it.
 */
export type Persistence = "durable" | "cached" | "none";

export interface CommitOptions {
  /** "durable" when unset. */
  persist?: Persistence;
  artifactId?: string;
  preview?: Image;
}

export interface RunnerDeps {
  store: SessionStore;
  artifacts: ArtifactStore;
  inference: ReplicaPool<typeof InferenceService>;
  postprocess: ReplicaPool<typeof PostprocessService>;
  logger: Logger;
  checkpointIntervalSteps: number;
  /** Calls per step and image before the session fails (the first one included). */
  maxAttempts: number;
  /** First wait before retrying when no other healthy replica is left; doubles per attempt. */
  retryBackoffMs: number;
  callTimeoutMs: number;
  /** A generation stream silent this long is abandoned as hung and retried. */
  streamIdleTimeoutMs: number;
  /** Bumps the sequence, stores (when asked) and tells watchers. */
  commit(session: Session, kind: SessionEventKind, options?: CommitOptions): void;
  /** Where measured step durations go, and the estimates that give a session its ETA come from. */
  timings?: TimingSource & { record(key: string, seconds: number): Promise<void> };
  /** The mesh the steps call; the replica pools when unset (tests give a fake). */
  stepMesh?: (position: {
    index: number;
    total: number;
  }) => StepMesh & { workers?: Set<string>; sharedUnetSteps?: number };
}

export type RunOutcome = "completed" | "paused" | "cancelled";

const STEP_OUTPUT = "step.";

/**
 * The workflow executor: walks the session's workflow version step by step in dependency order, running each
 * through its kind's module (sessions/steps). Completed steps' outputs are stored, so a session resumed after
 * a pause, a crash or a lost replica continues from where it was. An abort that is not a cancel (the
 * orchestrator shutting down) is thrown, leaving the session for recovery.
 */
export async function runSession(
  session: Session,
  workflow: CatalogEntry,
  control: RunControl,
  deps: RunnerDeps,
): Promise<RunOutcome> {
  const log = deps.logger.child({ sessionId: session.id, requestId: session.requestId || session.id });
  const policy = retryPolicy(deps.maxAttempts, deps.retryBackoffMs);
  const inputs = await deps.store.inputs(session.id);
  const outputs = new Map<string, WorkflowImage[]>();
  for (const [name, input] of Object.entries(inputs)) {
    if (name.startsWith(STEP_OUTPUT) && input.source.case === "image") {
      const [, stepId = ""] = name.split(".");
      outputs.set(stepId, [...(outputs.get(stepId) ?? []), { image: input.source.value, notes: {} }]);
    }
  }
  const { definition, order } = workflow.compiled;
  const steps = new Map(definition.steps.map((s) => [s.id, s]));
  const spec = session.spec ?? create(GenerationSpecSchema);
  // Until a generation reports its own, the ETA is the estimate of the steps still to run.
  const shape = shapeOf(session.spec);
  const estimate = await estimateDuration(definition, shape, deps.timings);
  // The model the inference replica actually used (the default when the spec names none), for the infotext.
  let modelUsed = session.spec?.models?.base ?? "";
  for (const [index, stepId] of order.entries()) {
    const step = steps.get(stepId);
    if (!step || outputs.has(stepId)) continue;
    if (control.cancelRequested) return "cancelled";
    if (control.pauseRequested) return "paused";
    session.currentStep = stepId;
    session.progress = index / order.length;
    session.etaSeconds = order.slice(index).reduce((sum, id) => sum + (estimate.steps.get(id) ?? 0), 0);
    deps.commit(session, SessionEventKind.STATE, { persist: "cached" });
    const started = performance.now();
    const position = { index, total: order.length };
    const mesh =
      deps.stepMesh?.(position) ?? new ReplicaStepMesh(session, control, deps, policy, position, log);
    const ctx = stepContext(step, mesh, await resolvePorts(step));
    let images: WorkflowImage[];
    try {
      const run = STEP_RUNNERS[step.kind];
      if (!run) throw new Error(`no module runs step kind "${step.kind}"`);
      images = await inSpan(`step ${stepId}`, { "dmesh.step_id": stepId, "dmesh.operation": step.kind }, () =>
        run(ctx),
      );
    } catch (err) {
      if (err instanceof StepInterrupted) return err.outcome;
      throw err;
    }
    modelUsed = ctx.modelUsed;
    const seconds = (performance.now() - started) / 1000;
    workflowStepSeconds.observe({ operation: step.kind }, seconds);
    if (deps.timings) await recordTiming(deps.timings, step, shape, seconds);
    session.timings.push(
      create(StepTimingSchema, {
        stepId,
        seconds,
        worker: [...(mesh.workers ?? [])].join(","),
        sharedUnetSteps: mesh.sharedUnetSteps ?? 0,
      }),
    );
    outputs.set(stepId, images);
    if (step.kind !== "encode") {
      images.forEach((image, i) => {
        inputs[`${STEP_OUTPUT}${stepId}.${i}`] = create(ImageInputSchema, {
          source: { case: "image", value: image.image },
        });
      });
      await deps.store.putInputs(session.id, inputs);
    }
  }
  return "completed";

  /** The images wired into each of the step's ports, read before it runs. */
  async function resolvePorts(step: StepDefinition): Promise<Map<string, WorkflowImage[]>> {
    const ports = new Map<string, WorkflowImage[]>();
    for (const [port, spec] of Object.entries(STEP_KINDS[step.kind]?.ports ?? {})) {
      const source = step.inputs[port];
      if (source !== undefined && spec.type !== "spec") ports.set(port, await resolveImages(source));
    }
    return ports;
  }

  function stepContext(
    step: StepDefinition,
    mesh: StepMesh & { workers?: Set<string> },
    ports: ReadonlyMap<string, WorkflowImage[]>,
  ): StepContext {
    const kind = STEP_KINDS[step.kind];
    return {
      session,
      step,
      spec,
      mesh,
      modelUsed,
      has: (port) => step.inputs[port] !== undefined,
      images: (port) => ports.get(port) ?? [],
      param: (name) => {
        if (step.params[name] !== undefined) return step.params[name];
        const bound = step.inputs[name];
        const ref = bound === undefined ? undefined : parseReference(bound);
        if (ref?.from === "input") {
          const given = session.inputs[ref.name];
          if (given) return toJson(ValueSchema, given as Value) as JsonValue;
          const declared = definition.inputs.find((i) => i.name === ref.name);
          if (declared?.default !== undefined) return declared.default;
        }
        return kind?.params[name]?.default;
      },
      sourceOf: (port) => {
        const ref = parseReference(step.inputs[port] ?? "");
        return ref?.from === "step" ? steps.get(ref.step) : undefined;
      },
      reject: (imageIndex, reason) => {
        session.rejections.push(create(ImageRejectionSchema, { stepId: step.id, imageIndex, reason }));
        log.info({ step: step.id, imageIndex, reason }, "image rejected");
      },
      storeArtifact: async (encoded, meta) => {
        const artifact = await deps.artifacts.put(encoded.data, {
          tenant: session.tenant,
          sessionId: session.id,
          mediaType: mediaTypeOf(encoded.encoding),
          ...meta,
        });
        if (!session.artifactIds.includes(artifact.id)) session.artifactIds.push(artifact.id);
        // Cached: a restart before the session's end encodes again, to the same bytes and artifact.
        deps.commit(session, SessionEventKind.ARTIFACT, { persist: "cached", artifactId: artifact.id });
      },
    };
  }

  async function resolveImages(source: string): Promise<WorkflowImage[]> {
    const ref = parseReference(source);
    if (!ref) return [];
    if (ref.from === "step") return outputs.get(ref.step) ?? [];
    const input = inputs[ref.name];
    if (!input) return [];
    if (input.source.case === "image") return [{ image: input.source.value, notes: {} }];
    if (input.source.case === "artifactId") {
      const artifactId = input.source.value;
      const artifact = await deps.artifacts.get(artifactId, session.tenant);
      if (!artifact)
        throw new FailedPreconditionError(`artifact ${artifactId} no longer exists`, `images.${ref.name}`);
      const image = create(ImageSchema, {
        encoding: encodingOf(artifact.mediaType),
        data: await deps.artifacts.read(artifactId),
      });
      return [{ image, notes: {} }];
    }
    return [];
  }
}

export function markFinished(session: Session, state: SessionState, error = ""): void {
  session.state = state;
  session.error = error;
  session.updatedAt = timestampNow();
  if (state === State.COMPLETED) session.progress = 1;
}
