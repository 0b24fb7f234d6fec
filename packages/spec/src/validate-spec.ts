import { GenerationMode, type GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { type Image, ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { checkName } from "./bounded-strings.js";
import { DEFAULTS, LIMITS } from "./limits.js";
import { resolveAdapters } from "./resolve-adapters.js";
import type { GenerationModeName, ResolvedSpec } from "./resolved-spec.js";
import { validateControlNets } from "./validate-control-nets.js";
import { validateSchedulerSpec } from "./validate-scheduler.js";

const MODES: Record<GenerationMode, GenerationModeName | undefined> = {
  [GenerationMode.UNSPECIFIED]: undefined,
  [GenerationMode.TXT2IMG]: "txt2img",
  [GenerationMode.IMG2IMG]: "img2img",
  [GenerationMode.INPAINT]: "inpaint",
};

/**
 * Checks a GenerationSpec against LIMITS and applies defaults. Every problem is an INVALID_ARGUMENT naming
 * the field by its path under `prefix` (e.g. "spec.size.width"). `defaultMode` lets a workflow imply one.
 */
export function validateGenerationSpec(
  spec: GenerationSpec | undefined,
  prefix = "spec",
  defaultMode: GenerationModeName = "txt2img",
): ResolvedSpec {
  const f = (path: string) => `${prefix}.${path}`;
  if (!spec) throw new InvalidArgumentError(prefix, "is required");
  const mode = MODES[spec.mode] ?? (spec.mode === GenerationMode.UNSPECIFIED ? defaultMode : undefined);
  if (!mode) throw new InvalidArgumentError(f("mode"), `unknown mode ${spec.mode}`);

  const c = spec.conditioning;
  const prompt = c?.prompt ?? "";
  if (prompt.trim() === "") throw new InvalidArgumentError(f("conditioning.prompt"), "must not be empty");
  for (const [name, text] of [
    ["prompt", prompt],
    ["negative_prompt", c?.negativePrompt ?? ""],
    ["prompt_2", c?.prompt2 ?? ""],
    ["negative_prompt_2", c?.negativePrompt2 ?? ""],
  ] as const) {
    if (text.length > LIMITS.maxPromptChars) {
      throw new InvalidArgumentError(
        f(`conditioning.${name}`),
        `is longer than ${LIMITS.maxPromptChars} characters`,
      );
    }
  }

  // LoRA tags are cut from the prompts here: the text encoders never see them.
  const texts = resolveAdapters(spec.adapters, c, prefix);

  for (const name of ["base", "refiner", "vae"] as const)
    checkName(spec.models?.[name] ?? "", f(`models.${name}`));

  const { width, height } = validateImageSize(spec.size?.width ?? 0, spec.size?.height ?? 0, {
    width: f("size.width"),
    height: f("size.height"),
    size: f("size"),
  });

  const steps = spec.scheduler?.steps ?? DEFAULTS.steps;
  if (!Number.isInteger(steps) || steps < LIMITS.minSteps || steps > LIMITS.maxSteps) {
    throw new InvalidArgumentError(
      f("scheduler.steps"),
      `must be in [${LIMITS.minSteps}, ${LIMITS.maxSteps}], got ${steps}`,
    );
  }
  const scheduler = validateSchedulerSpec(spec.scheduler, f("scheduler"));

  const p = spec.params;
  const guidanceScale = p?.guidanceScale ?? DEFAULTS.guidanceScale;
  range(guidanceScale, 0, LIMITS.maxGuidanceScale, f("params.guidance_scale"));
  const strength = p?.strength ?? DEFAULTS.strength;
  if (!(strength > 0 && strength <= 1))
    throw new InvalidArgumentError(f("params.strength"), `must be in (0, 1], got ${strength}`);
  range(p?.eta ?? 0, 0, 1, f("params.eta"));
  range(p?.guidanceRescale ?? 0, 0, 1, f("params.guidance_rescale"));
  range(p?.clipSkip ?? 0, 0, LIMITS.maxClipSkip, f("params.clip_skip"));
  const givenEnd = p?.denoisingEnd ?? 0;
  if (!(givenEnd >= 0 && givenEnd < 1)) {
    throw new InvalidArgumentError(f("params.denoising_end"), `must be in [0, 1), got ${givenEnd}`);
  }
  if (givenEnd > 0 && !spec.models?.refiner) {
    throw new InvalidArgumentError(f("params.denoising_end"), "needs models.refiner to hand off to");
  }
  const denoisingEnd = spec.models?.refiner && givenEnd === 0 ? DEFAULTS.denoisingEnd : givenEnd;

  const count = spec.output?.count || DEFAULTS.count;
  if (!Number.isInteger(count) || count < 1 || count > LIMITS.maxImagesPerRequest) {
    throw new InvalidArgumentError(
      f("output.count"),
      `must be in [1, ${LIMITS.maxImagesPerRequest}], got ${count}`,
    );
  }
  const quality = spec.output?.quality ?? 0;
  if (quality !== 0) range(quality, 1, 100, f("output.quality"));
  const previewInterval = spec.preview?.intervalSteps ?? 0;
  range(previewInterval, 0, LIMITS.maxPreviewInterval, f("preview.interval_steps"));

  const initImage = spec.initImage;
  const maskImage = spec.maskImage;
  if (mode !== "txt2img") requireImage(initImage, f("init_image"));
  if (mode === "inpaint") requireImage(maskImage, f("mask_image"));

  const micro = spec.micro;
  const originalSize = sizeOr(micro?.originalSize, { width, height }, f("micro.original_size"));
  const targetSize = sizeOr(micro?.targetSize, { width, height }, f("micro.target_size"));
  range(micro?.cropTop ?? 0, 0, LIMITS.maxSide, f("micro.crop_top"));
  range(micro?.cropLeft ?? 0, 0, LIMITS.maxSide, f("micro.crop_left"));

  return {
    mode,
    model: spec.models?.base ?? "",
    refiner: spec.models?.refiner ?? "",
    vae: spec.models?.vae ?? "",
    ...scheduler,
    steps,
    guidanceScale,
    seed: p?.seed,
    strength,
    eta: p?.eta ?? 0,
    guidanceRescale: p?.guidanceRescale ?? 0,
    clipSkip: p?.clipSkip ?? 0,
    denoisingEnd,
    prompt: texts.prompt,
    negativePrompt: texts.negativePrompt,
    prompt2: c?.prompt2 ? texts.prompt2 : texts.prompt,
    negativePrompt2: c?.negativePrompt2 ? texts.negativePrompt2 : texts.negativePrompt,
    adapters: texts.adapters,
    plainPrompt: c?.plainPrompt ?? false,
    width,
    height,
    originalSize,
    cropTop: micro?.cropTop ?? 0,
    cropLeft: micro?.cropLeft ?? 0,
    targetSize,
    aestheticScore: micro?.aestheticScore ?? DEFAULTS.aestheticScore,
    negativeAestheticScore: micro?.negativeAestheticScore ?? DEFAULTS.negativeAestheticScore,
    count,
    previewInterval,
    initImage,
    maskImage,
    controlNets: validateControlNets(spec.controlNets, f("control_nets"), checkInputImage),
  };
}

/** A generated image's width and height: each a multiple of 8 within the side limits, within maxPixels. */
export function validateImageSize(
  width: number,
  height: number,
  fields: { width: string; height: string; size: string },
): { width: number; height: number } {
  side(width, fields.width);
  side(height, fields.height);
  if (width * height > LIMITS.maxPixels) {
    throw new InvalidArgumentError(fields.size, `${width}x${height} is more than ${LIMITS.maxPixels} pixels`);
  }
  return { width, height };
}

function side(value: number, field: string): number {
  if (value === 0) throw new InvalidArgumentError(field, "is required");
  if (!Number.isInteger(value) || value < LIMITS.minSide || value > LIMITS.maxSide) {
    throw new InvalidArgumentError(field, `must be in [${LIMITS.minSide}, ${LIMITS.maxSide}], got ${value}`);
  }
  if (value % LIMITS.sideMultiple !== 0) {
    throw new InvalidArgumentError(field, `must be a multiple of ${LIMITS.sideMultiple}, got ${value}`);
  }
  return value;
}

function range(value: number, min: number, max: number, field: string): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `must be in [${min}, ${max}], got ${value}`);
  }
}

function sizeOr(
  size: { width: number; height: number } | undefined,
  fallback: { width: number; height: number },
  field: string,
): { width: number; height: number } {
  if (!size || (size.width === 0 && size.height === 0)) return fallback;
  range(size.width, 1, 65536, `${field}.width`);
  range(size.height, 1, 65536, `${field}.height`);
  return { width: size.width, height: size.height };
}

function requireImage(image: Image | undefined, field: string): void {
  if (!image || image.data.length === 0) throw new InvalidArgumentError(field, "is required for this mode");
  checkInputImage(image, field);
}

/** An input image's bytes are within maxInputImageBytes, and raw pixels state a geometry that fits them. */
export function checkInputImage(image: Image, field: string): void {
  if (image.data.length > LIMITS.maxInputImageBytes) {
    throw new InvalidArgumentError(field, `is larger than ${LIMITS.maxInputImageBytes} bytes`);
  }
  if (image.encoding === ImageEncoding.RAW) {
    const expected = image.width * image.height * image.channels;
    if (
      !(image.width > 0 && image.height > 0 && [1, 3, 4].includes(image.channels)) ||
      expected !== image.data.length
    ) {
      throw new InvalidArgumentError(
        field,
        "raw pixels need width, height, channels (1, 3 or 4) matching the data length",
      );
    }
  }
}
