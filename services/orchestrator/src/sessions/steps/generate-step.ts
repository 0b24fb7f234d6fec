import { clone, create } from "@bufbuild/protobuf";
import {
  ConditioningSchema,
  DimensionsSchema,
  GenerationMode,
  type GenerationSpec,
  GenerationSpecSchema,
  HyperparametersSchema,
  OutputSpecSchema,
  SchedulerSpecSchema,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { Image } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { FailedPreconditionError } from "@dmesh/runtime/errors";
import { num, type StepContext, type StepRunner, str, type WorkflowImage } from "./step-context.js";

/** Spec overrides a generating step makes. */
export interface GenerateOverrides {
  readonly mode: "txt2img" | "img2img" | "inpaint";
  readonly strength?: number;
  readonly steps?: number;
  readonly guidanceScale?: number;
  readonly prompt?: string;
  readonly negativePrompt?: string;
  readonly refiner: boolean;
  /** Replaces models.base (the refine step's refiner). */
  readonly model?: string;
}

/** txt2img, img2img or inpaint; adapters and ControlNets in the spec pass through untouched. */
export const runGenerate: StepRunner = async (ctx) => {
  const mode = (str(ctx.param("mode")) ??
    (ctx.has("mask") ? "inpaint" : ctx.has("image") ? "img2img" : "txt2img")) as GenerateOverrides["mode"];
  const overrides: GenerateOverrides = {
    mode,
    ...optional("strength", num(ctx.param("strength"))),
    ...optional("steps", num(ctx.param("steps"))),
    ...optional("guidanceScale", num(ctx.param("guidance_scale"))),
    ...optional("prompt", str(ctx.param("prompt"))),
    ...optional("negativePrompt", str(ctx.param("negative_prompt"))),
    refiner: ctx.param("refiner") === true,
  };
  const control = ctx.has("control") ? ctx.images("control").map((i) => i.image) : [];
  return generateOver(ctx, mode === "txt2img" ? [undefined] : ctx.images("image"), overrides, control);
};

/**
 * Runs one generation per source image (one without). Images from an earlier step get one image each, with
 * the seed that made the source (else the seed moved on by the index, so that a fan-out's copies differ); a
 * workflow's input image gets the spec's count. The session's seeds are the ones used.
 */
export async function generateOver(
  ctx: StepContext,
  sources: readonly (WorkflowImage | undefined)[],
  overrides: GenerateOverrides,
  control: readonly Image[] = [],
  notes: Readonly<Record<string, string>> = {},
): Promise<WorkflowImage[]> {
  const mask = ctx.has("mask") ? ctx.images("mask")[0]?.image : undefined;
  const fromStep = ctx.sourceOf("image") !== undefined;
  const out: WorkflowImage[] = [];
  const seeds: bigint[] = [];
  const used = new Set<bigint>();
  for (const [i, source] of sources.entries()) {
    const spec = generateSpec(ctx.spec, overrides, source?.image, mask, sources.length > 1 ? BigInt(i) : 0n);
    if (fromStep) {
      spec.output ??= create(OutputSpecSchema);
      spec.output.count = 1;
      // A fan-out's copies share their source's seed: each copy after the first moves on.
      spec.params ??= create(HyperparametersSchema);
      if (source?.seed !== undefined && !used.has(source.seed)) spec.params.seed = source.seed;
      if (spec.params?.seed !== undefined) used.add(spec.params.seed);
    }
    if (control.length > 0) attachControl(spec, control, i);
    const result = await ctx.mesh.generate(spec);
    if (result.model) ctx.modelUsed = result.model;
    result.images.forEach((image, k) => {
      const seed = result.seeds[k];
      out.push({
        image,
        notes: { ...source?.notes, ...notes },
        generated: result.infotext,
        ...(result.scheduler ? { scheduler: result.scheduler } : {}),
        ...(seed !== undefined ? { seed } : {}),
      });
    });
    seeds.push(...result.seeds);
  }
  ctx.session.seeds = seeds;
  return out;
}

/**
 * The spec one generation sends: a copy of the session's spec (which stays as submitted, so a restart starts
 * from it again) with the step's mode, input images and overrides.
 */
export function generateSpec(
  spec: GenerationSpec,
  o: GenerateOverrides,
  init: Image | undefined,
  mask: Image | undefined,
  seedOffset: bigint,
): GenerationSpec {
  const out = clone(GenerationSpecSchema, spec);
  out.mode =
    o.mode === "inpaint"
      ? GenerationMode.INPAINT
      : o.mode === "img2img"
        ? GenerationMode.IMG2IMG
        : GenerationMode.TXT2IMG;
  if (init) {
    out.initImage = init;
    if (init.width > 0 && init.height > 0)
      out.size = create(DimensionsSchema, { width: init.width, height: init.height });
  }
  if (mask) out.maskImage = mask;
  out.params ??= create(HyperparametersSchema);
  if (o.strength !== undefined) out.params.strength = o.strength;
  if (o.guidanceScale !== undefined) out.params.guidanceScale = o.guidanceScale;
  if (o.steps !== undefined) {
    out.scheduler ??= create(SchedulerSpecSchema);
    out.scheduler.steps = o.steps;
  }
  if (o.prompt !== undefined || o.negativePrompt !== undefined) {
    out.conditioning ??= create(ConditioningSchema);
    if (o.prompt !== undefined) out.conditioning.prompt = o.prompt;
    if (o.negativePrompt !== undefined) out.conditioning.negativePrompt = o.negativePrompt;
  }
  if (seedOffset > 0n && out.params.seed !== undefined) out.params.seed += seedOffset;
  if (o.model !== undefined && out.models) out.models.base = o.model;
  if (!o.refiner && out.models) out.models.refiner = "";
  if (!o.refiner) out.params.denoisingEnd = 0;
  return out;
}

/** Control maps from a control step go to the spec's ControlNet units, already preprocessed. */
function attachControl(spec: GenerationSpec, control: readonly Image[], index: number): void {
  if (spec.controlNets.length === 0)
    throw new FailedPreconditionError(
      "a control input needs spec.control_nets naming the ControlNet",
      "spec.control_nets",
    );
  const map = control[Math.min(index, control.length - 1)];
  for (const unit of spec.controlNets) {
    unit.image = map;
    unit.preprocessor = undefined;
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [k in K]: V });
}
