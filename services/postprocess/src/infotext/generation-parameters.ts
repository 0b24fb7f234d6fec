/** A value A1111 writes after `Key: ` (Python's `str()` of it, quoted when needed). */
export type InfotextValue = string | number | boolean;

/**
 * The generation settings that A1111's `create_infotext` writes, under typed names.
 * Unset fields are left out of the text, as A1111 leaves out `None`.
 */
export interface GenerationParameters {
  readonly prompt: string;
  readonly negativePrompt?: string;
  readonly steps?: number;
  readonly sampler?: string;
  readonly scheduleType?: string;
  readonly cfgScale?: number;
  readonly imageCfgScale?: number;
  readonly seed?: number;
  readonly width?: number;
  readonly height?: number;
  readonly modelHash?: string;
  readonly model?: string;
  readonly vaeHash?: string;
  readonly vae?: string;
  readonly variationSeed?: number;
  readonly variationSeedStrength?: number;
  readonly denoisingStrength?: number;
  /** A1111 writes it only when above 1 (1 is its default). */
  readonly clipSkip?: number;
  /** A1111's `extra_generation_params` (LoRA hashes, hires fix, …), written in insertion order. */
  readonly extra?: Readonly<Record<string, InfotextValue>>;
  readonly version?: string;
}

type FieldKind = "integer" | "number" | "string";

interface FieldSpec {
  readonly label: string;
  readonly key: keyof GenerationParameters;
  readonly kind: FieldKind;
}

/** Fields A1111 writes before `extra_generation_params`, in its order; `Size` is handled apart (two keys). */
export const LEADING_FIELDS: readonly FieldSpec[] = [
  { label: "Steps", key: "steps", kind: "integer" },
  { label: "Sampler", key: "sampler", kind: "string" },
  { label: "Schedule type", key: "scheduleType", kind: "string" },
  { label: "CFG scale", key: "cfgScale", kind: "number" },
  { label: "Image CFG scale", key: "imageCfgScale", kind: "number" },
  { label: "Seed", key: "seed", kind: "integer" },
  { label: "Model hash", key: "modelHash", kind: "string" },
  { label: "Model", key: "model", kind: "string" },
  { label: "VAE hash", key: "vaeHash", kind: "string" },
  { label: "VAE", key: "vae", kind: "string" },
  { label: "Variation seed", key: "variationSeed", kind: "integer" },
  { label: "Variation seed strength", key: "variationSeedStrength", kind: "number" },
  { label: "Denoising strength", key: "denoisingStrength", kind: "number" },
  { label: "Clip skip", key: "clipSkip", kind: "integer" },
];

/** Fields A1111 writes after `extra_generation_params`. */
export const TRAILING_FIELDS: readonly FieldSpec[] = [{ label: "Version", key: "version", kind: "string" }];

/** A1111 writes `Size` (width x height) right before `Model hash`. */
export const SIZE_LABEL = "Size";
export const SIZE_BEFORE_LABEL = "Model hash";
