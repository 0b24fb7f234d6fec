import { setTimeout as sleep } from "node:timers/promises";
import { clone, create, type DescService } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GenerationSpec, SchedulerSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import {
  DimensionsSchema,
  GenerationMode,
  GenerationSpecSchema,
  HyperparametersSchema,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { type Image, ImageEncoding, ImageSchema } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import type { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { SafetyPolicy, UpscaleKernel } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  type Session,
  SessionEventKind,
  SessionState,
  StepTimingSchema,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { REQUEST_ID_HEADER } from "@dmesh/runtime";
import { DomainError, FailedPreconditionError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { inSpan } from "@dmesh/runtime/tracing";
import { DEFAULTS, estimateActivationBytes } from "@dmesh/spec";
import type { CallNeed, Replica, ReplicaPool } from "../clients/replica-pool.js";
import { replicaFailovers, replicaRetries, workflowStepSeconds } from "../orchestrator-metrics.js";
import type { ArtifactStore } from "../store/artifact-store.js";
import { FencedError } from "../store/postgres/pg-session-store.js";
import type { SessionStore } from "../store/session-store.js";
import type { StepTemplate, WorkflowTemplate } from "../workflows/templates.js";
import { infotextParameters } from "./infotext-parameters.js";
import { encodingOf, mediaTypeOf } from "./media-type.js";

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
}

export type RunOutcome = "completed" | "paused" | "cancelled";

const STEP_OUTPUT = "step.";
const MAX_BACKOFF_MS = 10_000;
// Failures worth another try, on another replica where there is one: the replica died or restarted
// (UNAVAILABLE, UNKNOWN, INTERNAL from a cut stream), hung (DEADLINE_EXCEEDED), was busy (RESOURCE_EXHAUSTED)
// or gave up on the call (ABORTED). Anything else is an answer about the request itself.
const RETRYABLE = new Set([
  Code.Unavailable,
  Code.Unknown,
  Code.Aborted,
  Code.Internal,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
]);

/**
 * Executes one session's workflow, step by step in dependency order. Completed steps' outputs are stored,
 * so a session resumed after a pause, a crash or a lost replica continues from where it was. An abort that
 * is not a cancel (the orchestrator shutting down) is thrown, leaving the session for recovery.
 */
export async function runSession(
  session: Session,
  template: WorkflowTemplate,
  order: string[],
  control: RunControl,
  deps: RunnerDeps,
): Promise<RunOutcome> {
  const log = deps.logger.child({ sessionId: session.id, requestId: session.requestId || session.id });
  const inputs = await deps.store.inputs(session.id);
  const outputs = new Map<string, Image[]>();
  for (const [name, input] of Object.entries(inputs)) {
    if (name.startsWith(STEP_OUTPUT) && input.source.case === "image") {
      const [, stepId] = name.split(".");
      outputs.set(stepId ?? "", [...(outputs.get(stepId ?? "") ?? []), input.source.value]);
    }
  }
  const steps = new Map(template.steps.map((s) => [s.id, s]));
  // The model the inference replica actually used (the default when the spec names none), for the infotext.
  let modelUsed = session.spec?.models?.base ?? "";
  /** Infotext fields the last generate step reported (its ControlNet units, LoRA and embedding hashes). */
  let infotextFields: readonly { key: string; value: string }[] = [];
  // Likewise the scheduler it ran (the model's own when the spec names no kind); unset = the spec's.
  let schedulerUsed: SchedulerSpec | undefined;
  // Denoising steps of the current step whose UNet runs other sessions' images shared (batch groups).
  let sharedUnetSteps = 0;
  for (const [index, stepId] of order.entries()) {
    const step = steps.get(stepId);
    if (!step || outputs.has(stepId)) continue;
    if (control.cancelRequested) return "cancelled";
    if (control.pauseRequested) return "paused";
    session.currentStep = stepId;
    session.progress = index / order.length;
    deps.commit(session, SessionEventKind.STATE, { persist: "cached" });
    const started = performance.now();
    const workers = new Set<string>();
    sharedUnetSteps = 0;
    const images = await inSpan(
      `step ${stepId}`,
      { "dmesh.step_id": stepId, "dmesh.operation": step.operation },
      () => runStep(step, index, order.length, workers),
    );
    if (images === "paused" || images === "cancelled") return images;
    const seconds = (performance.now() - started) / 1000;
    workflowStepSeconds.observe({ operation: step.operation }, seconds);
    session.timings.push(
      create(StepTimingSchema, {
        stepId,
        seconds,
        worker: [...workers].join(","),
        sharedUnetSteps,
      }),
    );
    outputs.set(stepId, images);
    if (step.operation !== "encode") {
      images.forEach((image, i) => {
        inputs[`${STEP_OUTPUT}${stepId}.${i}`] = create(ImageInputSchema, {
          source: { case: "image", value: image },
        });
      });
      await deps.store.putInputs(session.id, inputs);
    }
  }
  return "completed";

  async function resolveInput(source: string): Promise<Image[]> {
    const [from, name] = source.split(".", 2);
    if (from !== "input") return outputs.get(from ?? "") ?? [];
    const input = inputs[name ?? ""];
    if (!input) return [];
    if (input.source.case === "image") return [input.source.value];
    if (input.source.case === "artifactId") {
      const artifactId = input.source.value;
      const artifact = await deps.artifacts.get(artifactId, session.tenant);
      if (!artifact)
        throw new FailedPreconditionError(`artifact ${artifactId} no longer exists`, `images.${name}`);
      return [
        create(ImageSchema, {
          encoding: encodingOf(artifact.mediaType),
          data: await deps.artifacts.read(artifactId),
        }),
      ];
    }
    return [];
  }

  async function runStep(
    step: StepTemplate,
    index: number,
    total: number,
    workers: Set<string>,
  ): Promise<Image[] | "paused" | "cancelled"> {
    const spec = session.spec ?? create(GenerationSpecSchema);
    switch (step.operation) {
      case "generate": {
        const sources = step.inputs.image ? await resolveInput(step.inputs.image) : [undefined];
        const mask = step.inputs.mask ? (await resolveInput(step.inputs.mask))[0] : undefined;
        const images: Image[] = [];
        for (const [i, init] of sources.entries()) {
          const stepSpec = generateSpec(spec, step, init, mask, sources.length > 1 ? BigInt(i) : 0n);
          const out = await onReplica(
            deps.inference,
            "inference",
            (replica) => generateOn(replica, stepSpec, index, total),
            stepSpec.models?.base ?? "",
            {
              requestId: session.requestId,
              bytesPerImage: estimateActivationBytes(stepSpec.size?.width ?? 0, stepSpec.size?.height ?? 0),
            },
          );
          if (out === "cancelled" || out.value === "paused") return out === "cancelled" ? out : "paused";
          workers.add(out.worker);
          images.push(...out.value);
        }
        return images;
      }
      case "upscale":
      case "enhance": {
        const images: Image[] = [];
        for (const image of await resolveInput(step.inputs.image ?? "")) {
          const out = await onReplica(
            deps.postprocess,
            `postprocess ${step.operation}`,
            async (pp): Promise<{ image?: Image }> =>
              step.operation === "upscale"
                ? pp.client.upscale(
                    { image, upscale: { factor: step.upscaleFactor ?? 2, kernel: UpscaleKernel.LANCZOS3 } },
                    callOptions(),
                  )
                : pp.client.enhance(
                    { image, ops: [{ op: { case: "sharpenSigma", value: 1 } }] },
                    callOptions(),
                  ),
          );
          if (out === "cancelled") return out;
          workers.add(out.worker);
          if (out.value.image) images.push(out.value.image);
        }
        return images;
      }
      case "encode": {
        const images = await resolveInput(step.inputs.image ?? "");
        // An image-to-image pass made them: A1111 records its strength.
        const source = steps.get((step.inputs.image ?? "").split(".")[0] ?? "");
        const strength =
          source?.operation === "generate" && source.mode !== "txt2img"
            ? (source.strength ?? spec.params?.strength ?? DEFAULTS.strength)
            : undefined;
        for (const [i, image] of images.entries()) {
          const seed = session.seeds[i] ?? spec.params?.seed ?? 0n;
          const out = await onReplica(deps.postprocess, "postprocess encode", (pp) =>
            pp.client.process(
              {
                image,
                parameters: infotextParameters(
                  spec,
                  seed,
                  { width: image.width, height: image.height },
                  modelUsed,
                  strength,
                  infotextFields,
                  schedulerUsed,
                ),
                // The tenant's own policy (postprocess's SAFETY_POLICY) decides.
                safety: SafetyPolicy.UNSPECIFIED,
                tenant: session.tenant,
                encode: {
                  encoding: spec.output?.encoding || ImageEncoding.PNG,
                  quality: spec.output?.quality ?? 0,
                  embedMetadata: true,
                },
              },
              callOptions(),
            ),
          );
          if (out === "cancelled") return out;
          workers.add(out.worker);
          const encoded = out.value.image;
          if (!encoded) throw new Error(`postprocess on ${out.worker} returned no image`);
          const artifact = await deps.artifacts.put(encoded.data, {
            tenant: session.tenant,
            sessionId: session.id,
            mediaType: mediaTypeOf(encoded.encoding),
            width: image.width,
            height: image.height,
            imageIndex: i,
            seed,
          });
          if (!session.artifactIds.includes(artifact.id)) session.artifactIds.push(artifact.id);
          // Cached: a restart before the session's end encodes again, to the same bytes and artifact.
          deps.commit(session, SessionEventKind.ARTIFACT, { persist: "cached", artifactId: artifact.id });
        }
        return [];
      }
    }
  }

  function callOptions(signal: AbortSignal = control.abort.signal) {
    return {
      signal,
      timeoutMs: deps.callTimeoutMs,
      headers: { [REQUEST_ID_HEADER]: session.requestId || session.id },
    };
  }

  /**
   * Runs `call` on a replica of `pool`. A transient failure is retried: at once on another healthy replica,
   * else after a doubling backoff (a restarting replica gets time to come back), up to maxAttempts calls;
   * then the session fails saying where, how and how often. A cancel ends it with "cancelled".
   */
  async function onReplica<S extends DescService, T>(
    pool: ReplicaPool<S>,
    what: string,
    call: (replica: Replica<S>) => Promise<T>,
    warmModel = "",
    need: CallNeed = {},
  ): Promise<{ value: T; worker: string } | "cancelled"> {
    const tried = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1 && !pool.hasHealthy(tried)) {
        try {
          await sleep(Math.min(deps.retryBackoffMs * 2 ** (attempt - 2), MAX_BACKOFF_MS), undefined, {
            signal: control.abort.signal,
          });
        } catch (err) {
          if (control.cancelRequested) return "cancelled";
          throw err;
        }
      }
      let replica: Replica<S> | undefined;
      try {
        replica = pool.pick(tried, warmModel, need);
        tried.add(replica.address);
        replica.inFlight++;
        return { value: await call(replica), worker: replica.address };
      } catch (err) {
        if (control.cancelRequested) return "cancelled";
        // Another orchestrator replica owns the session now: nothing to retry here.
        if (control.abort.signal.aborted || err instanceof FencedError) throw err;
        const failure = describeFailure(err);
        const where = replica ? ` on ${replica.address}` : "";
        if (!RETRYABLE.has(failure.code) || attempt >= deps.maxAttempts) {
          throw new Error(
            `${what}${where} failed (${Code[failure.code]}: ${failure.message}); gave up after ${attempt} attempt(s)`,
            {
              cause: err,
            },
          );
        }
        if (replica && failure.code !== Code.ResourceExhausted)
          pool.markDown(replica.address, failure.message);
        replicaRetries.inc({ domain: pool.domain });
        // The next attempt goes at once to a healthy replica not tried yet, where there is one.
        if (pool.hasHealthy(tried)) replicaFailovers.inc({ domain: pool.domain });
        log.warn(
          { replica: replica?.address, attempt, code: Code[failure.code], err: failure.message },
          `${what} failed; retrying`,
        );
      } finally {
        if (replica) replica.inFlight--;
      }
    }
  }

  /** One generate attempt on `replica`, resuming from the newest stored checkpoint when there is one. */
  async function generateOn(
    replica: Replica<typeof InferenceService>,
    spec: GenerationSpec,
    index: number,
    total: number,
  ): Promise<Image[] | "paused"> {
    control.replica = replica.address;
    session.worker = replica.address;
    session.attempts++;
    deps.commit(session, SessionEventKind.STATE, { persist: "cached" });
    // A stream that stays silent (a hung or frozen replica) is abandoned: streams have no overall deadline
    // because a generation may rightly take long, so the deadline is on the gap between events instead.
    const idle = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          idle.abort(
            new ConnectError(
              `no event from ${replica.address} for ${deps.streamIdleTimeoutMs} ms`,
              Code.DeadlineExceeded,
            ),
          ),
        deps.streamIdleTimeoutMs,
      );
    };
    try {
      arm();
      const images: Image[] = [];
      const seeds: bigint[] = [];
      const resumeFrom = await deps.store.checkpoint(session.id);
      const stream = replica.client.generate(
        {
          generationId: session.id,
          spec,
          resumeFrom,
          checkpointIntervalSteps: deps.checkpointIntervalSteps,
        },
        { ...callOptions(AbortSignal.any([control.abort.signal, idle.signal])), timeoutMs: undefined },
      );
      // A pause asked for before the stream existed reaches the replica now.
      if (control.pauseRequested)
        void replica.client.pauseGeneration({ generationId: session.id }, callOptions()).catch(() => {});
      for await (const res of stream) {
        arm();
        const event = res.event;
        switch (event.case) {
          case "progress": {
            const p = event.value;
            session.denoiseStep = p.step;
            session.denoiseTotal = p.totalSteps;
            session.etaSeconds = p.etaSeconds;
            session.progress = (index + (p.totalSteps > 0 ? p.step / p.totalSteps : 0)) / total;
            deps.commit(session, SessionEventKind.PROGRESS, {
              persist: "none",
              ...(p.preview ? { preview: p.preview } : {}),
            });
            break;
          }
          case "checkpoint":
            session.denoiseStep = event.value.step;
            await deps.store.saveWithCheckpoint(session, event.value);
            break;
          case "image":
            if (event.value.image) images.push(event.value.image);
            seeds.push(event.value.seed);
            break;
          case "done":
            if (event.value.model) modelUsed = event.value.model;
            infotextFields = event.value.infotext;
            if (event.value.scheduler) schedulerUsed = event.value.scheduler;
            sharedUnetSteps += event.value.sharedSteps;
            if (event.value.paused) return "paused";
            break;
        }
      }
      await deps.store.dropCheckpoint(session.id);
      session.seeds = seeds;
      return images;
    } finally {
      clearTimeout(timer);
      control.replica = undefined;
    }
  }
}

/** The gRPC code and message of a failed call (or of a domain error such as an empty replica pool). */
function describeFailure(err: unknown): { code: Code; message: string } {
  if (err instanceof DomainError) return { code: err.code, message: err.message };
  const ce = ConnectError.from(err);
  return { code: ce.code, message: ce.rawMessage };
}

/**
 * The spec one generate step sends: a copy of the session's spec (which stays as submitted, so a restart
 * starts from it again) with the step's mode, input images and overrides.
 */
function generateSpec(
  spec: GenerationSpec,
  step: StepTemplate,
  init: Image | undefined,
  mask: Image | undefined,
  seedOffset: bigint,
): GenerationSpec {
  const out = clone(GenerationSpecSchema, spec);
  out.mode =
    step.mode === "inpaint"
      ? GenerationMode.INPAINT
      : step.mode === "img2img"
        ? GenerationMode.IMG2IMG
        : GenerationMode.TXT2IMG;
  if (init) {
    out.initImage = init;
    if (init.width > 0 && init.height > 0)
      out.size = create(DimensionsSchema, { width: init.width, height: init.height });
  }
  if (mask) out.maskImage = mask;
  out.params ??= create(HyperparametersSchema);
  if (step.strength !== undefined) out.params.strength = step.strength;
  if (seedOffset > 0n && out.params.seed !== undefined) out.params.seed += seedOffset;
  if (!step.useRefiner && out.models) out.models.refiner = "";
  if (!step.useRefiner) out.params.denoisingEnd = 0;
  return out;
}

export function markFinished(session: Session, state: SessionState, error = ""): void {
  session.state = state;
  session.error = error;
  session.updatedAt = timestampNow();
  if (state === SessionState.COMPLETED) session.progress = 1;
}
