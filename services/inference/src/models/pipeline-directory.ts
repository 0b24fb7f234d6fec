import { existsSync } from "node:fs";
import { join } from "node:path";
import { ModelContractError, onnxFileBytes, optionalModelJson, readModelJsonSync } from "@dmesh/onnx";

export type ModelFamilyName = "sdxl" | "sdxl-refiner" | "sd1" | "sd2";

/** SDXL base or refiner: the SDXL VAE's latent space, pooled text embeddings and added time ids. */
export function isSdxlFamily(family: ModelFamilyName): boolean {
  return family === "sdxl" || family === "sdxl-refiner";
}

export const COMPONENTS = [
  "text_encoder",
  "text_encoder_2",
  "unet",
  "vae_decoder",
  "vae_encoder",
  // Optional: a TAESD-layout decoder (diffusers' AutoencoderTiny decoder I/O) that live previews use.
  "taesd_decoder",
] as const;
export type ComponentName = (typeof COMPONENTS)[number];

/** What a diffusers/optimum ONNX pipeline directory holds, read from its files without loading any model. */
export interface ModelDirectory {
  readonly id: string;
  readonly path: string;
  readonly family: ModelFamilyName;
  /** Component -> model.onnx path, for the components present. */
  readonly components: Partial<Record<ComponentName, string>>;
  readonly tokenizers: ("tokenizer" | "tokenizer_2")[];
  readonly schedulerConfig: Record<string, unknown>;
  readonly vaeScalingFactor: number;
  /** The VAE config's `sample_size` (diffusers' tile_sample_min_size): 512 for SD 1.x, 768 SD 2.x, 1024 SDXL. */
  readonly vaeSampleSize: number;
  /** `taesd_decoder/config.json`'s scaling_factor (AutoencoderTiny's is 1: the latents go in as they are). */
  readonly taesdScalingFactor: number;
  /** UNet `sample_size` x 8: the size the model was trained at. */
  readonly nativeSize: number;
  /** SDXL's `force_zeros_for_empty_prompt`: an empty negative prompt is a zero embedding. */
  readonly forceZerosForEmptyPrompt: boolean;
  readonly requiresAestheticsScore: boolean;
  /** The UNet config says 9 input channels: an inpainting model. */
  readonly inpainting: boolean;
  readonly fileBytes: Partial<Record<ComponentName, number>>;
}

/**
 * Reads a model directory in the layout diffusers/optimum ONNX exports produce. Every missing file that the
 * family needs is an error naming it, before any session is created.
 */
export function readModelDirectory(id: string, path: string): ModelDirectory {
  const index = readModelJsonSync(id, join(path, "model_index.json"));
  const components: Partial<Record<ComponentName, string>> = {};
  const fileBytes: Partial<Record<ComponentName, number>> = {};
  for (const name of COMPONENTS) {
    const file = join(path, name, "model.onnx");
    if (existsSync(file)) {
      components[name] = file;
      fileBytes[name] = onnxFileBytes(join(path, name));
    }
  }
  const hasTe1 = "text_encoder" in components;
  const hasTe2 = "text_encoder_2" in components;
  const unetConfig = optionalModelJson(join(path, "unet", "config.json"));
  const family: ModelFamilyName =
    hasTe1 && hasTe2
      ? "sdxl"
      : hasTe2
        ? "sdxl-refiner"
        : Number(unetConfig.cross_attention_dim) === 1024
          ? "sd2"
          : "sd1";
  const required: ComponentName[] = ["unet", "vae_decoder"];
  if (!hasTe1 && !hasTe2) required.push("text_encoder");
  for (const name of required) {
    if (!components[name]) throw new ModelContractError(id, `missing ${join(path, name, "model.onnx")}`);
  }
  const tokenizers: ("tokenizer" | "tokenizer_2")[] = [];
  if (hasTe1) tokenizers.push("tokenizer");
  if (hasTe2) tokenizers.push("tokenizer_2");
  for (const t of tokenizers) {
    for (const file of ["vocab.json", "merges.txt"]) {
      if (!existsSync(join(path, t, file)))
        throw new ModelContractError(id, `missing ${join(path, t, file)}`);
    }
  }
  const schedulerConfig = readModelJsonSync(id, join(path, "scheduler", "scheduler_config.json"));
  const vaeConfig = optionalModelJson(join(path, "vae_decoder", "config.json"));
  const sampleSize = Number(unetConfig.sample_size) || (isSdxlFamily(family) ? 128 : 64);
  return {
    id,
    path,
    family,
    components,
    tokenizers,
    schedulerConfig,
    vaeScalingFactor: Number(vaeConfig.scaling_factor) || (isSdxlFamily(family) ? 0.13025 : 0.18215),
    taesdScalingFactor:
      Number(optionalModelJson(join(path, "taesd_decoder", "config.json")).scaling_factor) || 1,
    vaeSampleSize:
      Number(vaeConfig.sample_size) || (isSdxlFamily(family) ? 1024 : family === "sd2" ? 768 : 512),
    nativeSize: sampleSize * 8,
    forceZerosForEmptyPrompt: index.force_zeros_for_empty_prompt !== false && isSdxlFamily(family),
    requiresAestheticsScore: index.requires_aesthetics_score === true || family === "sdxl-refiner",
    inpainting: Number(unetConfig.in_channels) === 9,
    fileBytes,
  };
}
