import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
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
import { type Session, SessionEventKind, SessionState, StepTimingSchema } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { FailedPreconditionError, type Logger, REQUEST_ID_HEADER } from "@dmesh/runtime";
import type { ReplicaPool } from "../mesh/replica-pool.js";
import type { ArtifactStore } from "../store/artifact-store.js";
import type { SessionStore } from "../store/session-store.js";
import type { StepTemplate, WorkflowTemplate } from "../workflows/templates.js";
import { infotextParameters } from "./infotext-parameters.js";

/** How the manager steers a running session. */
export interface RunControl {
  readonly abort: AbortController;
  pauseRequested: boolean;
  cancelRequested: boolean;
  /** Inference replica generating for it now. */
  replica: string | undefined;
}

export interface CommitOptions {
  persist?: boolean;
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
  maxAttempts: number;
  callTimeoutMs: number;
  /** Bumps the sequence, stores (when asked) and tells watchers. */
  commit(session: Session, kind: SessionEventKind, options?: CommitOptions): void;
}

export type RunOutcome = "completed" | "paused" | "cancelled";

const STEP_OUTPUT = "step.";
// Transport-level failures worth trying again on another replica; anything else is a real answer.
const RETRYABLE = new Set([Code.Unavailable, Code.Unknown, Code.Aborted, Code.Internal, Code.DeadlineExceeded]);

/**
 * Executes one session's workflow, step by step in dependency order. Completed steps' outputs are stored,
 * so a session resumed after a pause, a crash or a lost replica continues from where it was.
 */
export async function runSession(
  session: Session,
  template: WorkflowTemplate,
  order: string[],
  control: RunControl,
  deps: RunnerDeps,
): Promise<RunOutcome> {
  const log = deps.logger.child({ sessionId: session.id, requestId: session.requestId || session.id });
  const inputs = deps.store.inputs(session.id);
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
  for (const [index, stepId] of order.entries()) {
    const step = steps.get(stepId);
    if (!step || outputs.has(stepId)) continue;
    if (control.cancelRequested) return "cancelled";
    if (control.pauseRequested) return "paused";
    session.currentStep = stepId;
    session.progress = index / order.length;
    deps.commit(session, SessionEventKind.STATE, { persist: true });
    const started = performance.now();
    const images = await runStep(step, index, order.length);
    if (images === "paused" || images === "cancelled") return images;
    session.timings.push(
      create(StepTimingSchema, { stepId, seconds: (performance.now() - started) / 1000, worker: control.replica ?? "" }),
    );
    outputs.set(stepId, images);
    if (step.operation !== "encode") {
      images.forEach((image, i) => {
        inputs[`${STEP_OUTPUT}${stepId}.${i}`] = create(ImageInputSchema, { source: { case: "image", value: image } });
      });
      deps.store.putInputs(session.id, inputs);
    }
  }
  return "completed";

  function resolveInput(source: string): Image[] {
    const [from, name] = source.split(".", 2);
    if (from !== "input") return outputs.get(from ?? "") ?? [];
    const input = inputs[name ?? ""];
    if (!input) return [];
    if (input.source.case === "image") return [input.source.value];
    if (input.source.case === "artifactId") {
      const artifactId = input.source.value;
      const artifact = deps.artifacts.get(artifactId);
      if (!artifact) throw new FailedPreconditionError(`artifact ${artifactId} no longer exists`, `images.${name}`);
      return [create(ImageSchema, { encoding: encodingOf(artifact.mediaType), data: deps.artifacts.read(artifactId) })];
    }
    return [];
  }

  async function runStep(step: StepTemplate, index: number, total: number): Promise<Image[] | "paused" | "cancelled"> {
    const spec = session.spec ?? create(GenerationSpecSchema);
    switch (step.operation) {
      case "generate": {
        const sources = step.inputs.image ? resolveInput(step.inputs.image) : [undefined];
        const mask = step.inputs.mask ? resolveInput(step.inputs.mask)[0] : undefined;
        const images: Image[] = [];
        for (const [i, init] of sources.entries()) {
          const stepSpec = generateSpec(spec, step, init, mask, sources.length > 1 ? BigInt(i) : 0n);
          const out = await generateWithRetry(stepSpec, index, total);
          if (out === "paused" || out === "cancelled") return out;
          images.push(...out);
        }
        return images;
      }
      case "upscale":
      case "enhance": {
        const images: Image[] = [];
        for (const image of resolveInput(step.inputs.image ?? "")) {
          const pp = deps.postprocess.pick();
          pp.inFlight++;
          try {
            const res =
              step.operation === "upscale"
                ? await pp.client.upscale(
                    { image, upscale: { factor: step.upscaleFactor ?? 2, kernel: UpscaleKernel.LANCZOS3 } },
                    callOptions(),
                  )
                : await pp.client.enhance({ image, ops: [{ op: { case: "sharpenSigma", value: 1 } }] }, callOptions());
            if (res.image) images.push(res.image);
          } finally {
            pp.inFlight--;
          }
        }
        return images;
      }
      case "encode": {
        const images = resolveInput(step.inputs.image ?? "");
        for (const [i, image] of images.entries()) {
          const seed = session.seeds[i] ?? spec.params?.seed ?? 0n;
          const pp = deps.postprocess.pick();
          pp.inFlight++;
          try {
            const res = await pp.client.process(
              {
                image,
                parameters: infotextParameters(spec, seed, { width: image.width, height: image.height }, modelUsed),
                safety: SafetyPolicy.PASS,
                encode: {
                  encoding: spec.output?.encoding || ImageEncoding.PNG,
                  quality: spec.output?.quality ?? 0,
                  embedMetadata: true,
                },
              },
              callOptions(),
            );
            const encoded = res.image;
            if (!encoded) throw new Error("postprocess returned no image");
            const artifact = deps.artifacts.put(encoded.data, {
              sessionId: session.id,
              mediaType: mediaTypeOf(encoded.encoding),
              width: image.width,
              height: image.height,
              imageIndex: i,
              seed,
            });
            if (!session.artifactIds.includes(artifact.id)) session.artifactIds.push(artifact.id);
            deps.commit(session, SessionEventKind.ARTIFACT, { persist: true, artifactId: artifact.id });
          } finally {
            pp.inFlight--;
          }
        }
        return [];
      }
    }
  }

  function callOptions() {
    return {
      signal: control.abort.signal,
      timeoutMs: deps.callTimeoutMs,
      headers: { [REQUEST_ID_HEADER]: session.requestId || session.id },
    };
  }

  async function generateWithRetry(
    spec: GenerationSpec,
    index: number,
    total: number,
  ): Promise<Image[] | "paused" | "cancelled"> {
    const tried = new Set<string>();
    for (;;) {
      const replica = deps.inference.pick(tried);
      tried.add(replica.address);
      control.replica = replica.address;
      session.worker = replica.address;
      session.attempts++;
      replica.inFlight++;
      try {
        return await generateOnce(replica, spec, index, total);
      } catch (err) {
        if (control.cancelRequested || control.abort.signal.aborted) return "cancelled";
        const ce = ConnectError.from(err);
        if (!RETRYABLE.has(ce.code) || session.attempts >= deps.maxAttempts) {
          throw new Error(
            `inference on ${replica.address} failed (${Code[ce.code]}: ${ce.rawMessage}); gave up after ${session.attempts} attempt(s)`,
            { cause: err },
          );
        }
        deps.inference.markDown(replica.address, ce.rawMessage);
        log.warn({ replica: replica.address, code: Code[ce.code], err: ce.rawMessage }, "inference failed; retrying from checkpoint");
        deps.commit(session, SessionEventKind.STATE, { persist: true });
      } finally {
        replica.inFlight--;
        control.replica = undefined;
      }
    }
  }

  async function generateOnce(
    replica: ReturnType<typeof deps.inference.pick>,
    spec: GenerationSpec,
    index: number,
    total: number,
  ): Promise<Image[] | "paused"> {
    const images: Image[] = [];
    const seeds: bigint[] = [];
    const resumeFrom = deps.store.checkpoint(session.id);
    const stream = replica.client.generate(
      {
        generationId: session.id,
        spec,
        resumeFrom,
        checkpointIntervalSteps: deps.checkpointIntervalSteps,
      },
      { ...callOptions(), timeoutMs: undefined },
    );
    // A pause asked for before the stream existed reaches the replica now.
    if (control.pauseRequested) void replica.client.pauseGeneration({ generationId: session.id }).catch(() => {});
    for await (const res of stream) {
      const event = res.event;
      switch (event.case) {
        case "progress": {
          const p = event.value;
          session.denoiseStep = p.step;
          session.denoiseTotal = p.totalSteps;
          session.etaSeconds = p.etaSeconds;
          session.progress = (index + (p.totalSteps > 0 ? p.step / p.totalSteps : 0)) / total;
          deps.commit(session, SessionEventKind.PROGRESS, { persist: false, ...(p.preview ? { preview: p.preview } : {}) });
          break;
        }
        case "checkpoint":
          session.denoiseStep = event.value.step;
          deps.store.saveWithCheckpoint(session, event.value);
          break;
        case "image":
          if (event.value.image) images.push(event.value.image);
          seeds.push(event.value.seed);
          break;
        case "done":
          if (event.value.model) modelUsed = event.value.model;
          if (event.value.paused) return "paused";
          break;
      }
    }
    deps.store.dropCheckpoint(session.id);
    session.seeds = seeds;
    return images;
  }
}

/** The spec one generate step sends: the session's spec with the step's mode, input images and overrides. */
function generateSpec(
  spec: GenerationSpec,
  step: StepTemplate,
  init: Image | undefined,
  mask: Image | undefined,
  seedOffset: bigint,
): GenerationSpec {
  const out = create(GenerationSpecSchema, spec);
  out.mode =
    step.mode === "inpaint" ? GenerationMode.INPAINT : step.mode === "img2img" ? GenerationMode.IMG2IMG : GenerationMode.TXT2IMG;
  if (init) {
    out.initImage = init;
    if (init.width > 0 && init.height > 0) out.size = create(DimensionsSchema, { width: init.width, height: init.height });
  }
  if (mask) out.maskImage = mask;
  out.params = create(HyperparametersSchema, spec.params ?? {});
  if (step.strength !== undefined) out.params.strength = step.strength;
  if (seedOffset > 0n && out.params.seed !== undefined) out.params.seed += seedOffset;
  if (!step.useRefiner && out.models) out.models = { ...out.models, refiner: "" };
  if (!step.useRefiner) out.params.denoisingEnd = 0;
  return out;
}

function mediaTypeOf(encoding: ImageEncoding): string {
  switch (encoding) {
    case ImageEncoding.JPEG:
      return "image/jpeg";
    case ImageEncoding.WEBP:
      return "image/webp";
    case ImageEncoding.AVIF:
      return "image/avif";
    default:
      return "image/png";
  }
}

function encodingOf(mediaType: string): ImageEncoding {
  switch (mediaType) {
    case "image/jpeg":
      return ImageEncoding.JPEG;
    case "image/webp":
      return ImageEncoding.WEBP;
    case "image/avif":
      return ImageEncoding.AVIF;
    default:
      return ImageEncoding.PNG;
  }
}

export function markFinished(session: Session, state: SessionState, error = ""): void {
  session.state = state;
  session.error = error;
  session.updatedAt = timestampNow();
  if (state === SessionState.COMPLETED) session.progress = 1;
}

