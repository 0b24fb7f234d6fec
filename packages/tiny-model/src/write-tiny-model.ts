import { taesdConfig, textEncoderConfig, unetConfig, vaeConfig } from "./configs/component-configs.js";
import { modelIndex, schedulerConfig } from "./configs/pipeline-configs.js";
import { type TextEncoderDims, type TinyModelDims, tinyModelDims } from "./dims.js";
import {
  ensureModelDirectory,
  findCompleteModel,
  type GeneratedModelManifest,
  type WriteModelDirectoryOptions,
  writeModelDirectory,
} from "./generated-directory.js";
import { ContentsBuilder, type GeneratedContents } from "./generated-files.js";
import { buildClipTextEncoder } from "./models/clip-text-encoder.js";
import { buildTaesdDecoder } from "./models/taesd.js";
import { buildUnet } from "./models/unet.js";
import { buildVaeDecoder, buildVaeEncoder } from "./models/vae.js";
import {
  canonicalOptions,
  type ManifestOptions,
  resolveTinyModelOptions,
  type TinyModelOptions,
} from "./options.js";
import { END_OF_TEXT, learnClipBpeVocabulary } from "./tokenizer/clip-bpe-vocabulary.js";
import { TRAINING_CORPUS } from "./tokenizer/corpus.js";
import { clipTokenizerFiles } from "./tokenizer/tokenizer-files.js";

export type TinyModelManifest = GeneratedModelManifest<ManifestOptions, TinyModelDims>;

export const DIFFUSION_ARTIFACT = "diffusion-pipeline";
/** Learned merges: enough for the corpus' common words to be single tokens. */
const MERGE_COUNT = 384;

/** Builds every file of the tiny model in memory (pure: same options, same bytes). */
export function generateTinyModel(options: TinyModelOptions): {
  dims: TinyModelDims;
  contents: GeneratedContents;
} {
  const vocabulary = learnClipBpeVocabulary(TRAINING_CORPUS, MERGE_COUNT);
  const exclamationId = vocabulary.vocab.get("!");
  if (exclamationId === undefined) throw new Error("tiny-model: vocabulary lacks '!'");
  const dims = tinyModelDims(options, { vocabSize: vocabulary.vocab.size, exclamationId });
  const out = new ContentsBuilder();
  const storage = { externalData: options.externalData };

  const textEncoder = (
    folder: string,
    tokenizerFolder: string,
    d: TextEncoderDims,
    padToken: string,
  ): void => {
    out
      .onnx(`${folder}/model.onnx`, buildClipTextEncoder(d, options), storage)
      .json(`${folder}/config.json`, textEncoderConfig(d));
    for (const [name, content] of Object.entries(clipTokenizerFiles(vocabulary, padToken))) {
      out.text(`${tokenizerFolder}/${name}`, content);
    }
  };
  if (dims.textEncoder) {
    const pad = dims.textEncoder.padTokenId === exclamationId ? "!" : END_OF_TEXT;
    textEncoder("text_encoder", "tokenizer", dims.textEncoder, pad);
  }
  if (dims.textEncoder2) textEncoder("text_encoder_2", "tokenizer_2", dims.textEncoder2, "!");

  out
    .onnx("unet/model.onnx", buildUnet(dims.unet, options), storage)
    .json("unet/config.json", unetConfig(dims.unet));
  const vae = vaeConfig(dims.vae, options.kind);
  out
    .onnx("vae_decoder/model.onnx", buildVaeDecoder(dims.vae, options), storage)
    .json("vae_decoder/config.json", vae);
  out
    .onnx("vae_encoder/model.onnx", buildVaeEncoder(dims.vae, options), storage)
    .json("vae_encoder/config.json", vae);
  if (options.taesd) {
    out
      .onnx("taesd_decoder/model.onnx", buildTaesdDecoder(dims.vae, options), storage)
      .json("taesd_decoder/config.json", taesdConfig(dims.vae));
  }
  out.json("scheduler/scheduler_config.json", schedulerConfig(options.kind));
  out.json("model_index.json", modelIndex(options));
  return { dims, contents: out.build() };
}

/**
 * Writes a tiny diffusion model into `dir` in the layout of an optimum ONNX export and returns its
 * manifest (every file with its sha256). Refuses a non-empty directory that it did not write, unless forced.
 */
export async function writeTinyModel(
  dir: string,
  options: Partial<TinyModelOptions> = {},
  write: WriteModelDirectoryOptions = {},
): Promise<TinyModelManifest> {
  const resolved = resolveTinyModelOptions(options);
  const { dims, contents } = generateTinyModel(resolved);
  return writeModelDirectory(dir, DIFFUSION_ARTIFACT, canonicalOptions(resolved), dims, contents, write);
}

/** The manifest of `dir` if it already holds a complete tiny model made with the same options. */
export async function findTinyModel(
  dir: string,
  options: Partial<TinyModelOptions> = {},
): Promise<TinyModelManifest | undefined> {
  return findCompleteModel(dir, DIFFUSION_ARTIFACT, canonicalOptions(resolveTinyModelOptions(options)));
}

/** Writes the tiny model unless `dir` already holds the same one (`force` rewrites it anyway). */
export async function ensureTinyModel(
  dir: string,
  options: Partial<TinyModelOptions> = {},
  write: WriteModelDirectoryOptions = {},
): Promise<{ manifest: TinyModelManifest; written: boolean }> {
  const resolved = canonicalOptions(resolveTinyModelOptions(options));
  return ensureModelDirectory(
    dir,
    DIFFUSION_ARTIFACT,
    resolved,
    () => writeTinyModel(dir, resolved, write),
    write.force,
  );
}
