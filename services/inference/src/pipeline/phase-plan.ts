import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { ResolvedSpec } from "@dmesh/spec";
import type { LoadedModel } from "../models/loaded-model.js";
import { isSdxlFamily } from "../models/pipeline-directory.js";
import type { Scheduler } from "../schedulers/index.js";
import { clientDecimal } from "./client-decimal.js";
import type { DenoisePhaseName } from "./generation-types.js";
import { modelScheduler, takeScheduler } from "./model-scheduler.js";
import type { EncodedPrompts } from "./prompt-encoder.js";
import { baseStepCount, refinerTimesteps } from "./refiner-handoff.js";
import type { SchedulerPool } from "./scheduler-pool.js";
import type { TimeIds } from "./unet-batch.js";

/** A stretch of the schedule that one model denoises: the base's, then the refiner's after a handoff. */
export interface DenoisePhase {
  readonly name: DenoisePhaseName;
  readonly model: LoadedModel;
  readonly prompts: EncodedPrompts;
  readonly timeIds: TimeIds | undefined;
  /** The timesteps this phase runs, in order. */
  readonly timesteps: readonly number[];
  /** Steps of the schedule run before this phase. */
  readonly offset: number;
  /** The first timestep of the base's schedule (after `strength`): where img2img noises its input to. */
  readonly firstTimestep: number;
  /** A fresh scheduler positioned at this phase's first timestep (one per image: each keeps its own state). */
  scheduler(): Scheduler;
}

/**
 * The phases of a request: the base alone, or the base up to `denoising_end` and the refiner from there, as
 * diffusers' StableDiffusionXLPipeline(denoising_end) and StableDiffusionXLImg2ImgPipeline(denoising_start)
 * split the same schedule. `newScheduler` gives a model's scheduler set to the request's steps.
 */
export function planPhases(
  models: { base: LoadedModel; refiner: LoadedModel | undefined },
  spec: ResolvedSpec,
  basePrompts: EncodedPrompts,
  refinerPrompts: EncodedPrompts | undefined,
  newScheduler: (model: LoadedModel) => Scheduler,
): DenoisePhase[] {
  const { base, refiner } = models;
  if (base.contract.unetInChannels === 9 && spec.mode !== "inpaint") {
    throw new InvalidArgumentError(
      "spec.mode",
      `model "${base.dir.id}" is an inpainting model (9-channel unet): it needs mode INPAINT`,
    );
  }
  const probe = newScheduler(base);
  const start = spec.mode === "txt2img" ? 0 : strengthStart(probe, spec);
  const all = probe.timesteps.slice(start);
  if (all.length === 0) {
    throw new InvalidArgumentError("spec.params.strength", `leaves no denoising step at ${spec.steps} steps`);
  }
  const baseScheduler = () => {
    const scheduler = newScheduler(base);
    if (spec.mode !== "txt2img") scheduler.setBeginIndex(start);
    return scheduler;
  };
  const firstTimestep = all[0] as number;
  if (!refiner || spec.denoisingEnd <= 0) {
    return [
      {
        name: "base",
        model: base,
        prompts: basePrompts,
        timeIds: timeIdsFor(base, spec),
        timesteps: all,
        offset: 0,
        firstTimestep,
        scheduler: baseScheduler,
      },
    ];
  }
  checkRefiner(base, refiner, spec);
  const fraction = clientDecimal(spec.denoisingEnd);
  const baseSteps = all.slice(0, baseStepCount(all, fraction, probe));
  const refinerScheduler = () => {
    const scheduler = newScheduler(refiner);
    refinerTimesteps(scheduler, fraction);
    return scheduler;
  };
  const handoff = newScheduler(refiner);
  return [
    {
      name: "base",
      model: base,
      prompts: basePrompts,
      timeIds: timeIdsFor(base, spec),
      timesteps: baseSteps,
      offset: 0,
      firstTimestep,
      scheduler: baseScheduler,
    },
    {
      name: "refiner",
      model: refiner,
      prompts: refinerPrompts ?? basePrompts,
      timeIds: timeIdsFor(refiner, spec),
      timesteps: refinerTimesteps(handoff, fraction),
      offset: baseSteps.length,
      firstTimestep,
      scheduler: refinerScheduler,
    },
  ];
}

/** diffusers' get_timesteps: `strength` keeps the last `steps * strength` steps of the schedule. */
function strengthStart(scheduler: Scheduler, spec: ResolvedSpec): number {
  const initSteps = Math.min(Math.floor(spec.steps * clientDecimal(spec.strength)), spec.steps);
  return Math.max(spec.steps - initSteps, 0) * scheduler.order;
}

function checkRefiner(base: LoadedModel, refiner: LoadedModel, spec: ResolvedSpec): void {
  if (spec.mode === "inpaint") {
    throw new InvalidArgumentError(
      "spec.params.denoising_end",
      "a base -> refiner handoff is for txt2img and img2img, not inpainting",
    );
  }
  if (
    isSdxlFamily(base.dir.family) !== isSdxlFamily(refiner.dir.family) ||
    refiner.contract.unetInChannels !== 4
  ) {
    throw new InvalidArgumentError(
      "spec.models.refiner",
      `model "${refiner.dir.id}" (${refiner.dir.family}, ${refiner.contract.unetInChannels}-channel unet) cannot continue the latents of "${base.dir.id}" (${base.dir.family})`,
    );
  }
}

/** SDXL's added time ids: sizes and crop, then the target size (base) or the aesthetic score (refiner). */
function timeIdsFor(model: LoadedModel, spec: ResolvedSpec): TimeIds | undefined {
  if (!model.contract.usesTextEmbeds) return undefined;
  const { originalSize: o, targetSize: t, cropTop, cropLeft } = spec;
  if (model.contract.timeIdsLength === 5) {
    return {
      positive: [o.height, o.width, cropTop, cropLeft, spec.aestheticScore],
      negative: [o.height, o.width, cropTop, cropLeft, spec.negativeAestheticScore],
    };
  }
  const ids = [o.height, o.width, cropTop, cropLeft, t.height, t.width];
  return { positive: ids, negative: ids };
}

/** The request's scheduler on `model` (see `modelScheduler`), set to the request's steps. */
export function schedulerFor(pool: SchedulerPool, model: LoadedModel, spec: ResolvedSpec): Scheduler {
  return takeScheduler(pool, modelScheduler(model.dir, spec), spec.steps);
}
