import { AbortedError, InvalidArgumentError, type Logger } from "@dmesh/runtime";
import type { ResolvedSpec } from "@dmesh/spec";
import type { LoadedModel } from "../models/loaded-model.js";
import { RunClock } from "../models/onnx-component.js";
import { createGenerator, type Generator } from "../random/index.js";
import { createScheduler, type Scheduler, SchedulerInputError } from "../schedulers/index.js";
import { decodeSchedulerState, encodeSchedulerState } from "./checkpoint-codec.js";
import type { EtaEstimator } from "./eta-estimator.js";
import type { DenoiseState, GenerationSink, GenerationTimings } from "./generation-types.js";
import { latentPreview } from "./latent-preview.js";
import { binarizeMask, decodeInputImage, maskToLatentGrid, rgb8ToVaeInput, vaeOutputToRgb8 } from "./pixels.js";
import { type EncodedPrompts, encodePrompts } from "./prompt-encoder.js";
import { specDigest } from "./spec-digest.js";

export interface GenerateOptions {
  readonly spec: ResolvedSpec;
  /** The first image's seed; image i uses seed + i. */
  readonly seed: bigint;
  readonly resumeFrom: DenoiseState | undefined;
  /** Emit a checkpoint every N completed steps (0 = only on pause). */
  readonly checkpointInterval: number;
  readonly signal: AbortSignal;
  readonly pauseRequested: () => boolean;
  readonly eta: EtaEstimator;
  readonly logger: Logger;
}

export interface GenerateResult {
  readonly paused: boolean;
  readonly timings: GenerationTimings;
}

const LATENT_CHANNELS = 4;

/**
 * The diffusion pipeline for one request: encode the prompts, then per image prepare latents (noise, or the
 * noised VAE encoding of an input image), denoise with classifier-free guidance, and decode. It follows
 * diffusers' StableDiffusionXL{,Img2Img,Inpaint}Pipeline step for step, including the order in which the
 * seeded generator is drawn from, so that the same seed gives the same latents as diffusers on CPU.
 */
export async function generateImages(model: LoadedModel, options: GenerateOptions, sink: GenerationSink): Promise<GenerateResult> {
  const { spec, signal } = options;
  const started = performance.now();
  const clock = new RunClock();
  const timings: GenerationTimings = {
    totalSeconds: 0,
    onnxSeconds: 0,
    encodeSeconds: 0,
    denoiseSeconds: 0,
    decodeSeconds: 0,
    stepSeconds: [],
  };
  const elapsed = () => (performance.now() - started) / 1000;
  const digest = specDigest(spec, options.seed);
  const resume = options.resumeFrom;
  if (resume && resume.specDigest !== digest) {
    throw new InvalidArgumentError("resume_from.spec_digest", "the checkpoint belongs to a different request");
  }
  if (spec.mode === "inpaint" && model.contract.unetInChannels !== 9 && !model.vaeEncoder) {
    throw new InvalidArgumentError("spec.models.base", "inpainting needs a vae_encoder");
  }
  if (spec.mode !== "txt2img" && !model.vaeEncoder) {
    throw new InvalidArgumentError("spec.models.base", `${spec.mode} needs a vae_encoder, which this model lacks`);
  }

  const width = spec.width;
  const height = spec.height;
  const lh = height / 8;
  const lw = width / 8;
  const plane = lh * lw;
  const latentSize = LATENT_CHANNELS * plane;
  const provider = model.providers[0] ?? "cpu";
  const etaKey = options.eta.key(model.dir.id, width, height, provider);
  const sdxl = model.dir.family === "sdxl" || model.dir.family === "sdxl-refiner";
  const cfg = spec.guidanceScale > 1;

  sink.progress({ stage: "encoding_prompt", step: 0, totalSteps: spec.steps, etaSeconds: 0, elapsedSeconds: elapsed() });
  const encodeStart = performance.now();
  const prompts = await encodePrompts(model, spec, clock);
  const init = spec.mode === "txt2img" ? undefined : await prepareInputs(spec, width, height);
  timings.encodeSeconds += (performance.now() - encodeStart) / 1000;

  const timeIds = (aesthetic: number) => {
    const { originalSize: o, targetSize: t, cropTop, cropLeft } = spec;
    return model.contract.timeIdsLength === 5
      ? [o.height, o.width, cropTop, cropLeft, aesthetic]
      : [o.height, o.width, cropTop, cropLeft, t.height, t.width];
  };

  for (let index = 0; index < spec.count; index++) {
    const seed = options.seed + BigInt(index);
    const generator = createGenerator(seed);
    const scheduler = makeScheduler(model, spec);
    scheduler.setTimesteps(spec.steps);
    let timesteps = scheduler.timesteps;
    let tStart = 0;
    if (spec.mode !== "txt2img") {
      // diffusers' get_timesteps: strength keeps the last `steps * strength` steps of the schedule.
      const initSteps = Math.min(Math.floor(spec.steps * spec.strength), spec.steps);
      tStart = Math.max(spec.steps - initSteps, 0) * scheduler.order;
      timesteps = timesteps.slice(tStart);
      scheduler.setBeginIndex(tStart);
      if (timesteps.length === 0) {
        throw new InvalidArgumentError("spec.params.strength", `leaves no denoising step at ${spec.steps} steps`);
      }
    }

    const encStart = performance.now();
    let latents: Float32Array;
    let imageLatents: Float32Array | undefined;
    let noise: Float32Array | undefined;
    let maskLatent: Float32Array | undefined;
    let maskedImageLatents: Float32Array | undefined;
    if (!init) {
      latents = scaled(generator.randn(latentSize), scheduler.initNoiseSigma);
    } else {
      sink.progress({ stage: "encoding_image", step: 0, totalSteps: timesteps.length, etaSeconds: 0, elapsedSeconds: elapsed() });
      imageLatents = await vaeEncode(model, init.image, height, width, generator, clock);
      noise = generator.randn(latentSize);
      const strengthMax = spec.strength >= 1;
      latents =
        spec.mode === "inpaint" && strengthMax
          ? scaled(noise, scheduler.initNoiseSigma)
          : scheduler.addNoise(imageLatents, noise, timesteps[0] ?? 0);
      if (init.mask) {
        maskLatent = maskToLatentGrid(init.mask, height, width, lh, lw);
        if (model.contract.unetInChannels === 9) {
          const masked = init.image.map((v, i) => (init.mask?.[i % (width * height)] ?? 0) < 0.5 ? v : 0);
          maskedImageLatents = await vaeEncode(model, masked, height, width, generator, clock);
        }
      }
    }
    timings.encodeSeconds += (performance.now() - encStart) / 1000;

    let startStep = 0;
    if (resume && index < resume.imageIndex) {
      // Images finished before a pause are made again from their seeds: same inputs, same bytes.
    } else if (resume && index === resume.imageIndex) {
      latents = resume.latents.slice();
      scheduler.setState(decodeSchedulerState(resume.schedulerState));
      generator.setState(JSON.parse(resume.rngState));
      startStep = resume.step;
    }

    const total = timesteps.length;
    const checkpointOf = (step: number): DenoiseState => ({
      imageIndex: index,
      step,
      totalSteps: total,
      latents: latents.slice(),
      latentShape: [1, LATENT_CHANNELS, lh, lw],
      schedulerState: encodeSchedulerState(scheduler.getState()),
      rngState: JSON.stringify(generator.getState()),
      seed: options.seed,
      specDigest: digest,
    });

    for (let k = startStep; k < total; k++) {
      if (signal.aborted) throw new AbortedError("the generation was cancelled");
      if (options.pauseRequested()) {
        sink.checkpoint(checkpointOf(k));
        timings.totalSeconds = elapsed();
        timings.onnxSeconds = clock.seconds;
        return { paused: true, timings };
      }
      const stepStart = performance.now();
      const t = timesteps[k] ?? 0;
      let input = scheduler.scaleModelInput(latents, t);
      // 9-channel inpainting UNets take [latents, mask, masked image latents] along channels (batch 1: a concat).
      if (maskLatent && maskedImageLatents) input = concat([input, maskLatent, maskedImageLatents]);
      const noisePred = await predictNoise(model, input, t, prompts, cfg, spec, sdxl ? timeIds : undefined, clock);
      latents = scheduler.step(noisePred, t, latents, { generator, eta: spec.eta }).prevSample;
      if (maskLatent && imageLatents && noise && model.contract.unetInChannels !== 9) {
        // Ordinary UNets inpaint by pasting the (re-noised) original back outside the mask after every step.
        const next = timesteps[k + 1];
        const proper = next === undefined ? imageLatents : scheduler.addNoise(imageLatents, noise, next);
        for (let c = 0; c < LATENT_CHANNELS; c++) {
          for (let p = 0; p < plane; p++) {
            const m = maskLatent[p] ?? 0;
            const i = c * plane + p;
            latents[i] = (1 - m) * (proper[i] ?? 0) + m * (latents[i] ?? 0);
          }
        }
      }
      const stepSeconds = (performance.now() - stepStart) / 1000;
      timings.stepSeconds.push(stepSeconds);
      timings.denoiseSeconds += stepSeconds;
      options.eta.record(etaKey, stepSeconds);
      const remaining = total - k - 1 + (spec.count - index - 1) * total;
      const wantPreview = spec.previewInterval > 0 && (k + 1) % spec.previewInterval === 0;
      sink.progress({
        stage: "denoising",
        step: k + 1,
        totalSteps: total,
        etaSeconds: options.eta.estimate(etaKey, remaining) ?? 0,
        elapsedSeconds: elapsed(),
        ...(wantPreview ? { preview: { width: lw, height: lh, rgb: latentPreview(latents, lh, lw, sdxl) } } : {}),
      });
      if (options.checkpointInterval > 0 && (k + 1) % options.checkpointInterval === 0 && k + 1 < total) {
        sink.checkpoint(checkpointOf(k + 1));
      }
    }

    if (signal.aborted) throw new AbortedError("the generation was cancelled");
    sink.progress({ stage: "decoding", step: total, totalSteps: total, etaSeconds: 0, elapsedSeconds: elapsed() });
    const decodeStart = performance.now();
    const decoded = await model.vaeDecoder.run(
      { latent_sample: { data: scaled(latents, 1 / model.dir.vaeScalingFactor), dims: [1, LATENT_CHANNELS, lh, lw] } },
      clock,
      [model.contract.vaeDecoderOutput],
    );
    const sample = decoded[model.contract.vaeDecoderOutput];
    if (!sample) throw new Error("vae_decoder returned nothing");
    timings.decodeSeconds += (performance.now() - decodeStart) / 1000;
    sink.image({ index, seed, width, height, rgb: vaeOutputToRgb8(sample.data, height, width) });
  }
  timings.totalSeconds = elapsed();
  timings.onnxSeconds = clock.seconds;
  return { paused: false, timings };
}

function makeScheduler(model: LoadedModel, spec: ResolvedSpec): Scheduler {
  const config: Record<string, unknown> = { ...model.dir.schedulerConfig };
  if (spec.karrasSigmas !== undefined) config.use_karras_sigmas = spec.karrasSigmas;
  if (spec.timestepSpacing) config.timestep_spacing = spec.timestepSpacing;
  const fromConfig = String(config._class_name ?? "");
  const kind = spec.scheduler ?? fromConfig;
  try {
    return createScheduler(kind as Parameters<typeof createScheduler>[0], config);
  } catch (err) {
    if (!spec.scheduler && err instanceof SchedulerInputError && err.field === "kind") {
      // A model shipping a scheduler we lack (e.g. PNDM) still runs, with Euler, unless the request named one.
      return createScheduler("EulerDiscreteScheduler", config);
    }
    if (err instanceof SchedulerInputError) throw new InvalidArgumentError(`spec.scheduler (${err.field})`, err.message);
    throw err;
  }
}

async function prepareInputs(spec: ResolvedSpec, width: number, height: number) {
  if (!spec.initImage) throw new InvalidArgumentError("spec.init_image", "is required for this mode");
  const rgb = await decodeInputImage(spec.initImage, width, height, 3, "spec.init_image");
  const image = rgb8ToVaeInput(rgb, height, width);
  if (spec.mode !== "inpaint") return { image, mask: undefined };
  if (!spec.maskImage) throw new InvalidArgumentError("spec.mask_image", "is required for inpainting");
  const gray = await decodeInputImage(spec.maskImage, width, height, 1, "spec.mask_image");
  return { image, mask: binarizeMask(gray) };
}

/** VAE encode as diffusers' retrieve_latents(sample_mode="sample"): mean + std * noise, times the scaling factor. */
async function vaeEncode(
  model: LoadedModel,
  image: Float32Array,
  height: number,
  width: number,
  generator: Generator,
  clock: RunClock,
): Promise<Float32Array> {
  const encoder = model.vaeEncoder;
  const output = model.contract.vaeEncoderOutput;
  if (!encoder || !output) throw new InvalidArgumentError("spec.models.base", "the model has no vae_encoder");
  const out = await encoder.run({ sample: { data: image, dims: [1, 3, height, width] } }, clock, [output]);
  const result = out[output];
  if (!result) throw new Error("vae_encoder returned nothing");
  const plane = (height / 8) * (width / 8);
  const size = LATENT_CHANNELS * plane;
  const channels = result.dims[1] ?? LATENT_CHANNELS;
  let latents: Float32Array;
  if (channels === 2 * LATENT_CHANNELS) {
    const eps = generator.randn(size);
    latents = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const logvar = Math.min(20, Math.max(-30, result.data[size + i] ?? 0));
      latents[i] = (result.data[i] ?? 0) + Math.exp(0.5 * logvar) * (eps[i] ?? 0);
    }
  } else latents = result.data.slice(0, size);
  return scaled(latents, model.dir.vaeScalingFactor);
}

async function predictNoise(
  model: LoadedModel,
  input: Float32Array,
  t: number,
  prompts: EncodedPrompts,
  cfg: boolean,
  spec: ResolvedSpec,
  timeIds: ((aesthetic: number) => number[]) | undefined,
  clock: RunClock,
): Promise<Float32Array> {
  const batch = cfg ? 2 : 1;
  const channels = input.length / ((spec.height / 8) * (spec.width / 8));
  const sample = cfg ? concat([input, input]) : input;
  const hidden = cfg ? concat([prompts.negative, prompts.positive]) : prompts.positive;
  const feeds: Parameters<LoadedModel["unet"]["run"]>[0] = {
    sample: { data: sample, dims: [batch, channels, spec.height / 8, spec.width / 8] },
    timestep: { data: Float32Array.of(t), dims: model.contract.timestepRank === 0 ? [] : [1] },
    encoder_hidden_states: { data: hidden, dims: [batch, prompts.tokens, prompts.dim] },
  };
  if (model.contract.usesTextEmbeds && timeIds) {
    const pos = prompts.pooledPositive ?? new Float32Array(prompts.pooledDim);
    const neg = prompts.pooledNegative ?? new Float32Array(prompts.pooledDim);
    feeds.text_embeds = { data: cfg ? concat([neg, pos]) : pos, dims: [batch, prompts.pooledDim] };
    const posIds = Float32Array.from(timeIds(spec.aestheticScore));
    const negIds = Float32Array.from(timeIds(spec.negativeAestheticScore));
    feeds.time_ids = { data: cfg ? concat([negIds, posIds]) : posIds, dims: [batch, posIds.length] };
  }
  const out = await model.unet.run(feeds, clock, [model.contract.unetOutput]);
  const pred = out[model.contract.unetOutput]?.data;
  if (!pred) throw new Error("unet returned nothing");
  if (!cfg) return pred;
  const n = pred.length / 2;
  const uncond = pred.subarray(0, n);
  const text = pred.subarray(n);
  const guided = new Float32Array(n);
  for (let i = 0; i < n; i++) guided[i] = (uncond[i] ?? 0) + spec.guidanceScale * ((text[i] ?? 0) - (uncond[i] ?? 0));
  if (spec.guidanceRescale > 0) rescaleNoiseCfg(guided, text, spec.guidanceRescale);
  return guided;
}

/** diffusers' rescale_noise_cfg (Lin et al. 2023, section 3.4): match the guided std to the text std. */
function rescaleNoiseCfg(guided: Float32Array, text: Float32Array, rescale: number): void {
  const std = (x: Float32Array) => {
    let mean = 0;
    for (const v of x) mean += v;
    mean /= x.length;
    let sq = 0;
    for (const v of x) sq += (v - mean) ** 2;
    return Math.sqrt(sq / (x.length - 1));
  };
  const factor = std(text) / std(guided);
  for (let i = 0; i < guided.length; i++) {
    const g = guided[i] ?? 0;
    guided[i] = rescale * g * factor + (1 - rescale) * g;
  }
}

function scaled(x: Float32Array, factor: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i] ?? 0) * factor;
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
