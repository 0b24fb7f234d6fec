import {
  type GeneratedModelManifest,
  type WriteModelDirectoryOptions,
  writeModelDirectory,
} from "./generated-directory.js";
import { ContentsBuilder } from "./generated-files.js";
import { buildSafetyClassifier, type SafetyClassifierDims } from "./models/safety-classifier.js";
import { checkSeed, defaultTinyModelOptions } from "./options.js";

export interface TinySafetyClassifierOptions {
  readonly seed: number;
}

export type TinySafetyClassifierManifest = GeneratedModelManifest<
  TinySafetyClassifierOptions,
  SafetyClassifierDims
>;

export const SAFETY_CLASSIFIER_ARTIFACT = "safety-classifier";

/** Fills in the default seed and validates it. */
export function resolveTinySafetyClassifierOptions(
  options: Partial<TinySafetyClassifierOptions> = {},
): TinySafetyClassifierOptions {
  const seed = checkSeed(options.seed ?? defaultTinyModelOptions.seed);
  return { seed };
}

/**
 * Writes `model.onnx` (`pixel_values` float32 [b, 3, 224, 224], normalized as `preprocessor_config.json`
 * says → `logits` [b, 2]) with a transformers-style `config.json` (id2label) into `dir`.
 */
export async function writeTinySafetyClassifier(
  dir: string,
  options: Partial<TinySafetyClassifierOptions> = {},
  write: WriteModelDirectoryOptions = {},
): Promise<TinySafetyClassifierManifest> {
  const { seed } = resolveTinySafetyClassifierOptions(options);
  const dims: SafetyClassifierDims = { imageSize: 224, channels: [8, 16, 32], labels: ["normal", "nsfw"] };
  const contents = new ContentsBuilder()
    .onnx("model.onnx", buildSafetyClassifier(dims, seed))
    .json("config.json", {
      architectures: ["TinyCnnForImageClassification"],
      model_type: "tiny-cnn",
      id2label: Object.fromEntries(dims.labels.map((label, i) => [String(i), label])),
      label2id: Object.fromEntries(dims.labels.map((label, i) => [label, i])),
      image_size: dims.imageSize,
      num_channels: 3,
      problem_type: "single_label_classification",
    })
    .json("preprocessor_config.json", {
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.5, 0.5, 0.5],
      image_processor_type: "ViTImageProcessor",
      image_std: [0.5, 0.5, 0.5],
      resample: 2,
      rescale_factor: 1 / 255,
      size: { height: dims.imageSize, width: dims.imageSize },
    })
    .build();
  return writeModelDirectory(dir, SAFETY_CLASSIFIER_ARTIFACT, { seed }, dims, contents, write);
}
