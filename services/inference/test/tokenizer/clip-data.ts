import { existsSync } from "node:fs";
import { copyFile, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * `<repo>/../shared/data/clip` (or `$CLIP_DATA_DIR`, for checkouts elsewhere): the original CLIP vocab.json
 * and merges.txt, not shipped with the repo.
 */
export const CLIP_DATA_DIR =
  process.env.CLIP_DATA_DIR ?? fileURLToPath(new URL("../../../../../shared/data/clip", import.meta.url));

export const hasClipData =
  existsSync(join(CLIP_DATA_DIR, "vocab.json")) && existsSync(join(CLIP_DATA_DIR, "merges.txt"));

/** A describe title that says why the block is skipped when the shared data is absent. */
export const withClipData = (title: string): string =>
  hasClipData ? title : `${title} (skipped: no vocab.json/merges.txt in ${CLIP_DATA_DIR})`;

/** Writes a tokenizer folder into a new temp dir; values that are not strings are written as JSON. */
export async function writeTokenizerDir(files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "dmesh-tokenizer-"));
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), typeof content === "string" ? content : JSON.stringify(content));
  }
  return dir;
}

/** SDXL's `tokenizer_2/tokenizer_config.json`: the same vocabulary, padded with "!" (id 0). */
export const SDXL_TOKENIZER_2_CONFIG = {
  added_tokens_decoder: {
    "0": { content: "!", lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    "49406": {
      content: "<|startoftext|>",
      lstrip: false,
      normalized: true,
      rstrip: false,
      single_word: false,
      special: true,
    },
    "49407": {
      content: "<|endoftext|>",
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    },
  },
  bos_token: "<|startoftext|>",
  clean_up_tokenization_spaces: true,
  do_lower_case: true,
  eos_token: "<|endoftext|>",
  errors: "replace",
  model_max_length: 77,
  pad_token: "!",
  tokenizer_class: "CLIPTokenizer",
  unk_token: "<|endoftext|>",
};

/** A copy of the shared CLIP files with SDXL's tokenizer_2 config beside them. */
export async function writeSdxlTokenizer2Dir(): Promise<string> {
  const dir = await writeTokenizerDir({ "tokenizer_config.json": SDXL_TOKENIZER_2_CONFIG });
  await copyFile(join(CLIP_DATA_DIR, "vocab.json"), join(dir, "vocab.json"));
  await copyFile(join(CLIP_DATA_DIR, "merges.txt"), join(dir, "merges.txt"));
  return dir;
}
