import { RunClock } from "@dmesh/onnx";
import { AbortedError, InvalidArgumentError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import type { ResolvedSpec } from "@dmesh/spec";
import { type ControlUnitReport, RequestControlNets } from "../control/request-control-nets.js";
import { denoiseStepSeconds } from "../inference-metrics.js";
import type { LoadedModel } from "../models/loaded-model.js";
import { createGenerator, type Generator } from "../random/index.js";
import type { Scheduler } from "../schedulers/index.js";
import { stepPreview } from "../vae/step-preview.js";
import { encodeSchedulerStates } from "./checkpoint-codec.js";
import type { DenoiseState, GenerationSink, GenerationTimings } from "./generation-types.js";
import { guidedNoise } from "./guidance.js";
import { type InitialLatents, type InputImages, initialLatents, readInputImages } from "./initial-latents.js";
import { type DenoisePhase, planPhases, schedulerFor } from "./phase-plan.js";
import type { PipelineResources } from "./pipeline-resources.js";
import { encodePrompts } from "./prompt-encoder.js";
import { type BatchPlan, planBatches, type ResumePoint, readResume } from "./resume-point.js";
import { specDigest } from "./spec-digest.js";
import { UnetBatch } from "./unet-batch.js";
import { decodeLatents, type RequestVae } from "./vae.js";

/** The models a request runs: its base, and the refiner that continues after `denoising_end`. */
export interface SuiteModels {
  readonly base: LoadedModel;
  readonly refiner: LoadedModel | undefined;
}

export interface GenerateOptions {
  readonly spec: ResolvedSpec;
  /** The first image's seed; image i uses seed + i, with a generator of its own. */
  readonly seed: bigint;
  readonly resumeFrom: DenoiseState | undefined;
  /** Emit a checkpoint every N completed steps (0 = only on pause). */
  readonly checkpointInterval: number;
  /** Images denoised together in one UNet run (the UNet batch is twice that with guidance). */
  readonly maxUnetBatch: number;
  readonly signal: AbortSignal;
  readonly pauseRequested: () => boolean;
  readonly resources: PipelineResources;
  readonly logger: Logger;
  /** A `models.vae` suite and the VAE's tiling; unset = the model's own VAE, untiled. */
  readonly vae?: RequestVae;
}

export interface GenerateResult {
  readonly paused: boolean;
  readonly timings: GenerationTimings;
  /** Denoising steps whose UNet run was shared with other requests. */
  readonly sharedSteps: number;
  /** The ControlNet units as they ran (for the infotext). */
  readonly controlUnits: readonly ControlUnitReport[];
}

/** One image of a UNet batch, with everything that is its own: seed, generator, scheduler, latents. */
interface ImageSlot {
  readonly index: number;
  readonly seed: bigint;
  readonly generator: Generator;
  readonly init: InitialLatents;
  scheduler: Scheduler;
  latents: Float32Array;
}

/**
 * The diffusion pipeline for one request, following diffusers' StableDiffusionXL{,Img2Img,Inpaint}Pipeline
 * step for step, including the order of draws from each image's seeded generator, so that the same seed gives
 * the same latents as diffusers on CPU: encode the prompts; per UNet batch of images prepare latents (noise,
 * or the noised VAE encoding of an input image), denoise with classifier-free guidance on the base and then,
 * past `denoising_end`, on the refiner, and decode.
 */
export async function generateImages(
  models: SuiteModels,
  options: GenerateOptions,
  sink: GenerationSink,
): Promise<GenerateResult> {
  return new Generation(models, options, sink).run();
}

class Generation {
  private readonly clock = new RunClock();
  private readonly started = performance.now();
  private readonly timings: GenerationTimings = {
    totalSeconds: 0,
    onnxSeconds: 0,
    encodeSeconds: 0,
    denoiseSeconds: 0,
    decodeSeconds: 0,
    stepSeconds: [],
  };
  private readonly spec: ResolvedSpec;
  private readonly digest: string;
  private readonly latentHeight: number;
  private readonly latentWidth: number;
  private phases: DenoisePhase[] = [];
  private batches: BatchPlan[] = [];
  /** Every scheduler this request took from the pool, handed back when it ends. */
  private readonly borrowed: Scheduler[] = [];
  /** UNet steps run so far, and how many had run when the request was cancelled. */
  private stepsDone = 0;
  private stepsAtAbort: number | undefined;
  /** Steps whose UNet run also carried other requests' rows. */
  private sharedSteps = 0;
  private control = RequestControlNets.none;

  constructor(
    private readonly models: SuiteModels,
    private readonly options: GenerateOptions,
    private readonly sink: GenerationSink,
  ) {
    this.spec = options.spec;
    this.digest = specDigest(options.spec, options.seed);
    this.latentHeight = options.spec.height / 8;
    this.latentWidth = options.spec.width / 8;
  }

  async run(): Promise<GenerateResult> {
    const { spec, options } = this;
    const onAbort = () => {
      this.stepsAtAbort ??= this.stepsDone;
    };
    options.signal.addEventListener("abort", onAbort, { once: true });
    try {
      const resume = options.resumeFrom;
      if (resume && resume.specDigest !== this.digest) {
        throw new InvalidArgumentError(
          "resume_from.spec_digest",
          "the checkpoint belongs to a different request",
        );
      }
      this.progress("encoding_prompt", 0, 0);
      const encodeStart = performance.now();
      const { base, refiner } = this.models;
      const { prompts } = options.resources;
      const basePrompts = await prompts.get(base, spec, () => encodePrompts(base, spec, this.clock));
      const refinerPrompts = refiner
        ? await prompts.get(refiner, spec, () => encodePrompts(refiner, spec, this.clock))
        : undefined;
      let inputs: InputImages | undefined;
      if (spec.mode !== "txt2img") {
        this.progress("encoding_image", 0, 0);
        inputs = await readInputImages(base, spec, this.clock, options.vae);
      }
      if (spec.controlNets.length > 0) this.progress("encoding_image", 0, 0);
      this.control = await RequestControlNets.prepare(
        base,
        spec,
        options.resources.controlNets,
        options.signal,
      );
      this.timings.encodeSeconds += seconds(encodeStart);
      this.phases = planPhases(this.models, spec, basePrompts, refinerPrompts, (model) => {
        const scheduler = schedulerFor(options.resources.schedulers, model, spec);
        this.borrowed.push(scheduler);
        return scheduler;
      });
      const total = this.totalSteps;
      const point = resume ? readResume(resume, spec, this.phases, total) : undefined;
      this.batches = planBatches(spec.count, this.imagesPerRun(), point);
      for (const [b, batch] of this.batches.entries()) {
        if ((await this.runBatch(b, batch, inputs, batch.resume ? point : undefined)) === "paused") {
          return this.result(true);
        }
      }
      return this.result(false);
    } catch (err) {
      if (err instanceof AbortedError) {
        options.logger.info(
          { stepsAtAbort: this.stepsAtAbort, stepsDone: this.stepsDone },
          "generation cancelled",
        );
      }
      throw err;
    } finally {
      this.control.release();
      options.signal.removeEventListener("abort", onAbort);
      options.resources.schedulers.give(this.borrowed);
    }
  }

  private result(paused: boolean): GenerateResult {
    return {
      paused,
      timings: this.finishedTimings(),
      sharedSteps: this.sharedSteps,
      controlUnits: this.control.reports,
    };
  }

  private get totalSteps(): number {
    return this.phases.reduce((n, p) => n + p.timesteps.length, 0);
  }

  private async runBatch(
    b: number,
    batch: BatchPlan,
    inputs: InputImages | undefined,
    point: ResumePoint | undefined,
  ): Promise<"done" | "paused"> {
    const { spec, options } = this;
    const base = this.phases[0] as DenoisePhase;
    const prepareStart = performance.now();
    const slots: ImageSlot[] = [];
    for (let i = 0; i < batch.size; i++) {
      const index = batch.first + i;
      const seed = options.seed + BigInt(index);
      const generator = createGenerator(seed);
      const scheduler = base.scheduler();
      const init = initialLatents(base.model, spec, inputs, scheduler, generator, base.firstTimestep);
      slots.push({ index, seed, generator, init, scheduler, latents: init.latents });
    }
    this.timings.encodeSeconds += seconds(prepareStart);

    let from = { phase: 0, step: 0 };
    if (point) {
      // The batch is prepared as if fresh (so a 4-channel inpaint has its blend inputs), then put back where it stopped.
      const phase = this.phases[point.phase] as DenoisePhase;
      slots.forEach((slot, i) => {
        if (point.phase > 0) slot.scheduler = phase.scheduler();
        point.restore(i, slot.scheduler, slot.generator);
        slot.latents = point.latents(i);
      });
      from = { phase: point.phase, step: point.step };
    }
    for (let p = from.phase; p < this.phases.length; p++) {
      const phase = this.phases[p] as DenoisePhase;
      const resumed = point !== undefined && p === from.phase;
      if (p > 0 && !resumed) for (const slot of slots) slot.scheduler = phase.scheduler();
      if ((await this.denoise(b, p, slots, resumed ? from.step : 0)) === "paused") return "paused";
    }

    this.checkAborted();
    const decoder = (this.phases.at(-1) as DenoisePhase).model;
    const total = this.totalSteps;
    this.progress("decoding", total, total);
    for (const slot of slots) {
      const decodeStart = performance.now();
      const rgb = await decodeLatents(
        this.options.vae?.vae ?? decoder.vae,
        slot.latents,
        spec.height,
        spec.width,
        this.clock,
        this.options.resources.buffers,
        this.options.vae?.tiling,
      );
      this.timings.decodeSeconds += seconds(decodeStart);
      this.sink.image({ index: slot.index, seed: slot.seed, width: spec.width, height: spec.height, rgb });
    }
    return "done";
  }

  /** Runs phase `p` of batch `b` from its step `from`; returns "paused" after emitting a checkpoint. */
  private async denoise(b: number, p: number, slots: ImageSlot[], from: number): Promise<"done" | "paused"> {
    const { spec, options } = this;
    const phase = this.phases[p] as DenoisePhase;
    const total = this.totalSteps;
    const guidance =
      spec.guidanceScale > 1 ? { scale: spec.guidanceScale, rescale: spec.guidanceRescale } : undefined;
    const unet = new UnetBatch(
      options.resources.buffers,
      options.resources.batcherFor(phase.model),
      phase.model,
      phase.prompts,
      phase.timeIds,
      slots.length,
      guidance !== undefined,
      this.latentHeight,
      this.latentWidth,
      options.maxUnetBatch,
    );
    // The base's ControlNet residuals (zeros on steps no unit acts on, and for a refiner taking residuals).
    const residuals = this.control.forBatch(
      phase.model,
      phase.name === "base",
      unet.rows,
      this.latentHeight,
      this.latentWidth,
      options.resources.buffers,
    );
    const etaKey = this.etaKey(p, slots.length);
    const { timesteps } = phase;
    try {
      for (let k = from; k < timesteps.length; k++) {
        this.checkAborted();
        if (options.pauseRequested()) {
          this.sink.checkpoint(this.checkpoint(phase, slots, phase.offset + k, total));
          return "paused";
        }
        const stepStart = performance.now();
        const t = timesteps[k] as number;
        const { output: prediction, shared } = await unet.predict(
          slots.map((s) => [s.scheduler.scaleModelInput(s.latents, t), ...s.init.extraChannels]),
          t,
          this.clock,
          residuals && ((feeds) => residuals.feeds(feeds, phase.offset + k, total, this.clock)),
        );
        slots.forEach((slot, i) => {
          const noise = guidedNoise(prediction, i, slots.length, guidance);
          slot.latents = slot.scheduler.step(noise, t, slot.latents, {
            generator: slot.generator,
            eta: spec.eta,
          }).prevSample;
          if (slot.init.blend) this.pasteOutsideMask(slot, timesteps[k + 1]);
        });
        this.stepsDone++;
        if (shared) this.sharedSteps++;
        const stepSeconds = seconds(stepStart);
        denoiseStepSeconds.observe(stepSeconds);
        this.timings.stepSeconds.push(stepSeconds);
        this.timings.denoiseSeconds += stepSeconds;
        options.resources.eta.record(etaKey, stepSeconds);
        const step = phase.offset + k + 1;
        const first = slots[0] as ImageSlot;
        const preview =
          spec.previewInterval > 0 && step % spec.previewInterval === 0
            ? await stepPreview(phase.model, first.latents, this.latentHeight, this.latentWidth, this.clock)
            : undefined;
        this.sink.progress({
          stage: "denoising",
          step,
          totalSteps: total,
          etaSeconds: this.etaSeconds(b, p, timesteps.length - k - 1),
          elapsedSeconds: seconds(this.started),
          phase: phase.name,
          ...(preview ? { preview } : {}),
        });
        if (options.checkpointInterval > 0 && step % options.checkpointInterval === 0 && step < total) {
          this.sink.checkpoint(this.checkpoint(phase, slots, step, total));
        }
      }
    } finally {
      residuals?.release();
      unet.release();
    }
    return "done";
  }

  /**
   * Inpainting with an ordinary UNet (diffusers' `num_channels_unet == 4` branch): after every step the
   * image's latents, noised to the next timestep, replace everything outside the mask.
   */
  private pasteOutsideMask(slot: ImageSlot, next: number | undefined): void {
    const blend = slot.init.blend;
    if (!blend) return;
    const proper =
      next === undefined
        ? blend.imageLatents
        : slot.scheduler.addNoise(blend.imageLatents, blend.noise, next);
    const plane = blend.mask.length;
    const latents = slot.latents;
    for (let i = 0; i < latents.length; i++) {
      // The mask is binary, so (1 - m) * proper + m * latents is an exact choice.
      if (blend.mask[i % plane] === 0) latents[i] = proper[i] as number;
    }
  }

  private checkpoint(phase: DenoisePhase, slots: ImageSlot[], step: number, total: number): DenoiseState {
    const size = (slots[0] as ImageSlot).latents.length;
    const latents = new Float32Array(slots.length * size);
    for (const [i, s] of slots.entries()) latents.set(s.latents, i * size);
    return {
      imageIndex: (slots[0] as ImageSlot).index,
      phase: phase.name,
      step,
      totalSteps: total,
      latents,
      latentShape: [slots.length, 4, this.latentHeight, this.latentWidth],
      schedulerState: encodeSchedulerStates(slots.map((s) => s.scheduler.getState())),
      rngState: JSON.stringify(slots.map((s) => s.generator.getState())),
      seed: this.options.seed,
      specDigest: this.digest,
    };
  }

  /** How many images share a UNet run: MAX_UNET_BATCH, unless an export fixed its batch size. */
  private imagesPerRun(): number {
    const rows = this.spec.guidanceScale > 1 ? 2 : 1;
    let images = Math.max(1, this.options.maxUnetBatch);
    for (const phase of this.phases) {
      const fixed = phase.model.contract.unetBatch;
      if (fixed === undefined) continue;
      if (fixed !== rows) {
        throw new InvalidArgumentError(
          "spec.params.guidance_scale",
          `model "${phase.model.dir.id}" has a unet exported for batches of ${fixed}, but one image needs ${rows} row(s) at this guidance scale`,
        );
      }
      images = 1;
    }
    return images;
  }

  private etaKey(p: number, images: number): string {
    const model = (this.phases[p] as DenoisePhase).model;
    return this.options.resources.eta.key(
      `${model.dir.id}x${images}`,
      this.spec.width,
      this.spec.height,
      model.providers[0] ?? "cpu",
    );
  }

  /** Seconds left: the rest of this phase, the later phases of this batch, and the later batches. */
  private etaSeconds(b: number, p: number, stepsLeft: number): number {
    let total = 0;
    for (let batch = b; batch < this.batches.length; batch++) {
      const images = (this.batches[batch] as BatchPlan).size;
      for (let phase = batch === b ? p : 0; phase < this.phases.length; phase++) {
        const steps =
          batch === b && phase === p ? stepsLeft : (this.phases[phase] as DenoisePhase).timesteps.length;
        total += this.options.resources.eta.estimate(this.etaKey(phase, images), steps) ?? 0;
      }
    }
    return total;
  }

  private progress(
    stage: "encoding_prompt" | "encoding_image" | "decoding",
    step: number,
    total: number,
  ): void {
    this.sink.progress({
      stage,
      step,
      totalSteps: total,
      etaSeconds: 0,
      elapsedSeconds: seconds(this.started),
    });
  }

  private checkAborted(): void {
    if (this.options.signal.aborted) throw new AbortedError("the generation was cancelled");
  }

  private finishedTimings(): GenerationTimings {
    this.timings.totalSeconds = seconds(this.started);
    this.timings.onnxSeconds = this.clock.seconds;
    return this.timings;
  }
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}
