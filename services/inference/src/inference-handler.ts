import { randomInt } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { DataType } from "@dmesh/contracts/dmesh/common/v1/tensor_pb.js";
import {
  type DenoiseCheckpoint,
  type DenoiseCheckpointSchema,
  DenoisePhase,
  type GenerateRequest,
  type GenerateResponseSchema,
  GenerationTimingsSchema,
  type InferenceService,
  Stage,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import {
  AsyncChannel,
  InvalidArgumentError,
  type Logger,
  ResourceExhaustedError,
  scopeFrom,
} from "@dmesh/runtime";
import { type ResolvedSpec, validateGenerationSpec } from "@dmesh/spec";
import type { AdapterDirectory } from "./adapters/adapter-directory.js";
import {
  adapterInfotext,
  adapterVariant,
  embeddingsUsed,
  loraUses,
  usedAdapterHashes,
} from "./adapters/request-adapters.js";
import type { DeviceMemoryReader } from "./clients/device-memory.js";
import { controlNetInfotext } from "./control/control-net-infotext.js";
import { generationEnded, generations } from "./inference-metrics.js";
import type { ModelRegistry } from "./models/model-registry.js";
import { generateImages } from "./pipeline/generate-images.js";
import type { GenerationQueue } from "./pipeline/generation-queue.js";
import type { DenoisePhaseName, DenoiseState, Stage as StageName } from "./pipeline/generation-types.js";
import { checkRequestScheduler } from "./pipeline/model-scheduler.js";
import type { PipelineResources } from "./pipeline/pipeline-resources.js";
import type { Vae } from "./vae/vae.js";
import type { VaeRegistry } from "./vae/vae-registry.js";
import { planVaeTiling, type VaeTiling, type VaeTilingSettings } from "./vae/vae-tiling.js";

type Response = MessageInitShape<typeof GenerateResponseSchema>;

const STAGES: Record<StageName, Stage> = {
  loading: Stage.LOADING_MODEL,
  encoding_prompt: Stage.ENCODING_PROMPT,
  encoding_image: Stage.ENCODING_IMAGE,
  denoising: Stage.DENOISING,
  decoding: Stage.DECODING,
};

const PHASES: Record<DenoisePhaseName, DenoisePhase> = {
  base: DenoisePhase.BASE,
  refiner: DenoisePhase.REFINER,
};

/** InferenceService transport: proto in, domain pipeline, proto events out. */
export class InferenceHandler implements ServiceImpl<typeof InferenceService> {
  private readonly pauses = new Map<string, { paused: boolean }>();

  constructor(
    private readonly models: ModelRegistry,
    private readonly queue: GenerationQueue,
    private readonly resources: PipelineResources,
    /** Images denoised together in one UNet run (MAX_UNET_BATCH). */
    private readonly maxUnetBatch: number,
    private readonly logger: Logger,
    /** The memory of the device the models run on, from this host's device service (DEVICE_URL). */
    private readonly deviceMemory?: DeviceMemoryReader,
    /** VAE suites (`models.vae`) and when the VAE runs in tiles. */
    private readonly vaes?: { registry: VaeRegistry; tiling: VaeTilingSettings },
    /** LoRA and embedding files, and where patched models too large for memory go. */
    private readonly adapters?: { readonly directory: AdapterDirectory; readonly cacheDir: string },
  ) {}

  async *generate(req: GenerateRequest, ctx: HandlerContext): AsyncGenerator<Response> {
    const scope = scopeFrom(ctx, this.logger);
    const spec = validateGenerationSpec(req.spec, "spec");
    if (req.checkpointIntervalSteps < 0)
      throw new InvalidArgumentError("checkpoint_interval_steps", "must be >= 0");
    const resume = req.resumeFrom ? checkpointToDomain(req.resumeFrom) : undefined;
    if (resume && spec.seed !== undefined && spec.seed !== resume.seed) {
      throw new InvalidArgumentError(
        "resume_from.seed",
        `is ${resume.seed}, but the request asks for seed ${spec.seed}`,
      );
    }
    // A request without a seed resumes with the one its first run chose, which the checkpoint carries.
    const seed = resume?.seed ?? spec.seed ?? BigInt(randomInt(0, 2 ** 32));
    // Every LoRA's file is found before the request is queued: an unknown name is NOT_FOUND at once.
    const adapters = this.adapters;
    if (spec.adapters.length > 0 && adapters === undefined)
      throw new InvalidArgumentError("spec.adapters", "this inference process has no LoRA directory");
    const loras = adapters === undefined ? [] : loraUses(spec, adapters.directory);
    const id = req.generationId || scope.requestId;
    // A session's new owner (another orchestrator replica, after the old one froze past its lease) asks again
    // while the old run still ends here: busy, so it retries (RESOURCE_EXHAUSTED), rather than failing.
    if (this.pauses.has(id))
      throw new ResourceExhaustedError(
        `generation_id: generation "${id}" is already running here (an earlier run of it); try again once it ends`,
      );
    // Before any work: a scheduler the models cannot run as asked is the caller's INVALID_ARGUMENT.
    const ran = this.checkScheduler(spec);
    if (spec.vae) this.vaes?.registry.check(spec.vae);
    if (ran?.substituted)
      scope.logger.warn(
        { model: spec.model, why: ran.substituted },
        "model's own scheduler replaced by Euler",
      );
    const pause = { paused: false };
    this.pauses.set(id, pause);
    const channel = new AsyncChannel<Response>();
    const work = this.queue
      .run(ctx.signal, async () => {
        channel.push({
          event: { case: "progress", value: { stage: Stage.LOADING_MODEL, totalSteps: spec.steps } },
        });
        const base = await this.models.acquire(spec.model, "models.base");
        const releases = [base.release];
        try {
          const set = {
            loras,
            embeddings: adapters === undefined ? [] : embeddingsUsed(base.model, spec, adapters.directory),
          };
          // The base with this request's adapter set applied: its own sessions, batcher and prompt cache.
          const adapted =
            adapters !== undefined && set.loras.length + set.embeddings.length > 0
              ? await this.models.acquireVariant(
                  spec.model,
                  "models.base",
                  adapterVariant(set, { cacheDir: adapters.cacheDir }),
                )
              : undefined;
          if (adapted) releases.push(adapted.release);
          const refiner = spec.refiner
            ? await this.models.acquire(spec.refiner, "models.refiner")
            : undefined;
          if (refiner) releases.push(refiner.release);
          const model = adapted?.model ?? base.model;
          const hashes = usedAdapterHashes(model, set);
          const suite = spec.vae ? await this.vaes?.registry.acquire(spec.vae, model) : undefined;
          if (suite) releases.push(suite.release);
          const vae = await this.requestVae(spec, suite?.vae ?? model.vae);
          if (vae.tiling)
            scope.logger.info({ vae: (suite?.vae ?? model.vae).id, ...vae.tiling }, "VAE runs in tiles");
          const result = await generateImages(
            { base: model, refiner: refiner?.model },
            {
              spec,
              seed,
              resumeFrom: resume,
              checkpointInterval: req.checkpointIntervalSteps,
              maxUnetBatch: this.maxUnetBatch,
              signal: ctx.signal,
              pauseRequested: () => pause.paused,
              resources: this.resources,
              logger: scope.logger,
              vae: { vae: suite?.vae, tiling: vae.tiling },
            },
            {
              progress: (p) =>
                channel.push({
                  event: {
                    case: "progress",
                    value: {
                      stage: STAGES[p.stage],
                      step: p.step,
                      totalSteps: p.totalSteps,
                      etaSeconds: p.etaSeconds,
                      elapsedSeconds: p.elapsedSeconds,
                      phase: p.phase ? PHASES[p.phase] : DenoisePhase.UNSPECIFIED,
                      ...(p.preview
                        ? {
                            preview: {
                              encoding: ImageEncoding.RAW,
                              data: p.preview.rgb,
                              width: p.preview.width,
                              height: p.preview.height,
                              channels: 3,
                            },
                          }
                        : {}),
                    },
                  },
                }),
              checkpoint: (state) =>
                channel.push({ event: { case: "checkpoint", value: checkpointToProto(state) } }),
              image: (img) =>
                channel.push({
                  event: {
                    case: "image",
                    value: {
                      index: img.index,
                      seed: img.seed,
                      image: {
                        encoding: ImageEncoding.RAW,
                        data: img.rgb,
                        width: img.width,
                        height: img.height,
                        channels: 3,
                      },
                    },
                  },
                }),
            },
          );
          generations.inc({ result: result.paused ? "paused" : "completed" });
          channel.push({
            event: {
              case: "done",
              value: {
                timings: create(GenerationTimingsSchema, result.timings),
                executionProviders: model.providers,
                paused: result.paused,
                model: model.dir.id,
                sharedSteps: result.sharedSteps,
                // In A1111's order: scripts (ControlNet) first, then extra networks, then embeddings.
                infotext: [...controlNetInfotext(result.controlUnits), ...adapterInfotext(hashes)],
                ...(ran ? { scheduler: ran.scheduler } : {}),
              },
            },
          });
          scope.logger.info(
            {
              model: model.dir.id,
              sharedSteps: result.sharedSteps,
              seconds: result.timings.totalSeconds,
              onnxSeconds: result.timings.onnxSeconds,
              paused: result.paused,
            },
            "generation finished",
          );
        } finally {
          for (const release of releases) release();
        }
      })
      .then(
        () => channel.close(),
        (err) => {
          generationEnded(err, ctx.signal);
          channel.close(err);
        },
      );
    try {
      yield* channel;
    } finally {
      this.pauses.delete(id);
      await work;
    }
  }

  /** How a request's VAE runs: in tiles above VAE_TILE_ABOVE, or when the device's free memory is short. */
  private async requestVae(spec: ResolvedSpec, vae: Vae): Promise<{ tiling: VaeTiling | undefined }> {
    if (!this.vaes) return { tiling: undefined };
    const free = (await this.deviceMemory?.read())?.freeBytes;
    return { tiling: planVaeTiling(spec.width, spec.height, vae, this.vaes.tiling, free) };
  }

  /** The scheduler the base will run (undefined when a model directory is unusable: acquiring it says why). */
  private checkScheduler(spec: ResolvedSpec) {
    const base = this.models.info(spec.model, "models.base").dir;
    const refiner = spec.refiner ? this.models.info(spec.refiner, "models.refiner").dir : undefined;
    if (!base) return undefined;
    return checkRequestScheduler(this.resources.schedulers, { base, refiner }, spec);
  }

  pauseGeneration(req: { generationId: string }) {
    if (!req.generationId) throw new InvalidArgumentError("generation_id", "is required");
    const pause = this.pauses.get(req.generationId);
    if (pause) pause.paused = true;
    return { found: pause !== undefined };
  }

  async getQueue() {
    const deviceMemory = await this.deviceMemory?.read();
    return {
      running: this.queue.running,
      queued: this.queue.queued,
      maxConcurrent: this.queue.maxConcurrent,
      maxQueue: this.queue.maxQueued,
      loadedModels: this.models.loadedIds(),
      maxUnetBatch: this.maxUnetBatch,
      ...(deviceMemory ? { deviceMemory } : {}),
    };
  }
}

function checkpointToProto(state: DenoiseState): MessageInitShape<typeof DenoiseCheckpointSchema> {
  return {
    step: state.step,
    totalSteps: state.totalSteps,
    imageIndex: state.imageIndex,
    latents: {
      dtype: DataType.FLOAT32,
      shape: [...state.latentShape],
      data: new Uint8Array(state.latents.buffer, state.latents.byteOffset, state.latents.byteLength),
    },
    schedulerStateJson: state.schedulerState,
    rngStateJson: state.rngState,
    seed: state.seed,
    specDigest: state.specDigest,
    phase: PHASES[state.phase],
  };
}

function checkpointToDomain(cp: DenoiseCheckpoint): DenoiseState {
  const latents = cp.latents;
  if (!latents || latents.dtype !== DataType.FLOAT32 || latents.data.byteLength % 4 !== 0) {
    throw new InvalidArgumentError("resume_from.latents", "must be a float32 tensor");
  }
  const count = latents.shape.reduce((n, d) => n * d, 1);
  if (count * 4 !== latents.data.byteLength)
    throw new InvalidArgumentError("resume_from.latents", "shape does not match data");
  const copy = new Uint8Array(latents.data); // a fresh, aligned copy: gRPC hands bytes as a Buffer view, whose slice() is a view too
  const phase = cp.phase === DenoisePhase.REFINER ? "refiner" : "base";
  return {
    imageIndex: cp.imageIndex,
    phase,
    step: cp.step,
    totalSteps: cp.totalSteps,
    latents: new Float32Array(copy.buffer, copy.byteOffset, count),
    latentShape: latents.shape,
    schedulerState: cp.schedulerStateJson,
    rngState: cp.rngStateJson,
    seed: cp.seed,
    specDigest: cp.specDigest,
  };
}
