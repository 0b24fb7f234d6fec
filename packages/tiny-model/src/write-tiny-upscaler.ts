import {
  type GeneratedModelManifest,
  type WriteModelDirectoryOptions,
  writeModelDirectory,
} from "./generated-directory.js";
import { ContentsBuilder } from "./generated-files.js";
import { buildUpscaler, type UpscalerDims } from "./models/upscaler.js";
import { checkSeed, defaultTinyModelOptions, TinyModelOptionError } from "./options.js";

export interface TinyUpscalerOptions {
  readonly scale: 2 | 4;
  readonly seed: number;
}

export type TinyUpscalerManifest = GeneratedModelManifest<TinyUpscalerOptions, UpscalerDims>;

export const UPSCALER_ARTIFACT = "upscaler";

/** Fills in defaults (×2, seed 42) and validates, naming the bad field. */
export function resolveTinyUpscalerOptions(options: Partial<TinyUpscalerOptions> = {}): TinyUpscalerOptions {
  const scale = options.scale ?? 2;
  const seed = checkSeed(options.seed ?? defaultTinyModelOptions.seed);
  if (scale !== 2 && scale !== 4) throw new TinyModelOptionError("scale", "must be 2 or 4");
  return { scale, seed };
}

/**
 * Writes `model.onnx` (input `input` float32 [b, 3, H, W] in [0, 1] → `output` [b, 3, sH, sW]) and a
 * basicsr-style `config.json` into `dir`.
 */
export async function writeTinyUpscaler(
  dir: string,
  options: Partial<TinyUpscalerOptions> = {},
  write: WriteModelDirectoryOptions = {},
): Promise<TinyUpscalerManifest> {
  const resolved = resolveTinyUpscalerOptions(options);
  const dims: UpscalerDims = { scale: resolved.scale, numFeat: 16, numBlock: 2 };
  const contents = new ContentsBuilder()
    .onnx("model.onnx", buildUpscaler(dims, resolved.seed))
    .json("config.json", {
      model_type: "esrgan",
      architecture: "RRDBNet",
      scale: dims.scale,
      num_in_ch: 3,
      num_out_ch: 3,
      num_feat: dims.numFeat,
      num_block: dims.numBlock,
      input_name: "input",
      output_name: "output",
      input_range: [0, 1],
      layout: "NCHW",
    })
    .build();
  return writeModelDirectory(dir, UPSCALER_ARTIFACT, resolved, dims, contents, write);
}
