import { unetConfig } from "./configs/component-configs.js";
import { tinyModelDims, type UnetDims } from "./dims.js";
import {
  type GeneratedModelManifest,
  type WriteModelDirectoryOptions,
  writeModelDirectory,
} from "./generated-directory.js";
import { ContentsBuilder } from "./generated-files.js";
import { buildControlNet, CONDITIONING_EMBEDDING_CHANNELS } from "./models/controlnet.js";
import {
  checkSeed,
  resolveTinyModelOptions,
  TinyModelOptionError,
  type TinyModelOptions,
} from "./options.js";

export interface TinyControlNetOptions {
  /** The tiny model it conditions: its UNet's block layout and text widths (not a refiner: they have none). */
  readonly kind: "sdxl" | "sd15" | "sd2";
  readonly seed: number;
  /** The tiny UNet's layers_per_block it matches (1, the default model's, or 2). */
  readonly layersPerBlock: 1 | 2;
}

export type TinyControlNetManifest = GeneratedModelManifest<TinyControlNetOptions, UnetDims>;

export const CONTROLNET_ARTIFACT = "controlnet";

/** Fills in defaults (sdxl, seed 5, layers per block 1) and validates, naming the bad field. */
export function resolveTinyControlNetOptions(
  options: Partial<TinyControlNetOptions> = {},
): TinyControlNetOptions {
  const kind = options.kind ?? "sdxl";
  if (!["sdxl", "sd15", "sd2"].includes(kind))
    throw new TinyModelOptionError(
      "kind",
      'must be one of "sdxl", "sd15", "sd2" (a refiner takes no ControlNet)',
    );
  const layersPerBlock = options.layersPerBlock ?? 1;
  if (layersPerBlock !== 1 && layersPerBlock !== 2)
    throw new TinyModelOptionError("layersPerBlock", "must be 1 or 2");
  return { kind, seed: checkSeed(options.seed ?? 5), layersPerBlock };
}

/** The UNet dims of the tiny model a ControlNet with these options belongs to (the vocabulary plays no part). */
function unetDims(o: TinyControlNetOptions): UnetDims {
  const model: TinyModelOptions = resolveTinyModelOptions({ kind: o.kind, layersPerBlock: o.layersPerBlock });
  return tinyModelDims(model, { vocabSize: 2, exclamationId: 0 }).unet;
}

/**
 * Writes a tiny ControlNet into `dir` (`<MODELS_DIR>/controlnet/<name>/`): `model.onnx` in the split-export
 * layout (the UNet's inputs plus `controlnet_cond` and `conditioning_scale`, returning
 * `down_block_<i>_additional_residual` per skip connection and `mid_block_additional_residual`) and diffusers'
 * ControlNetModel `config.json`. It fits the tiny model of the same kind whose UNet takes residuals
 * (`controlResiduals`).
 */
export async function writeTinyControlNet(
  dir: string,
  options: Partial<TinyControlNetOptions> = {},
  write: WriteModelDirectoryOptions = {},
): Promise<TinyControlNetManifest> {
  const resolved = resolveTinyControlNetOptions(options);
  const dims = { ...unetDims(resolved), inChannels: 4 };
  const { up_block_types: _up, out_channels: _out, ...config } = unetConfig(dims);
  const contents = new ContentsBuilder()
    .onnx(
      "model.onnx",
      buildControlNet(dims, { seed: resolved.seed, timestepType: "float32", timestepShape: "vector" }),
    )
    .json("config.json", {
      ...config,
      _class_name: "ControlNetModel",
      conditioning_channels: 3,
      conditioning_embedding_out_channels: CONDITIONING_EMBEDDING_CHANNELS,
      controlnet_conditioning_channel_order: "rgb",
      global_pool_conditions: false,
    })
    .build();
  return writeModelDirectory(dir, CONTROLNET_ARTIFACT, resolved, dims, contents, write);
}
