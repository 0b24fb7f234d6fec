import { MAX_POSITIONS } from "../dims.js";
import { type ClipBpeVocabulary, END_OF_TEXT, START_OF_TEXT } from "./clip-bpe-vocabulary.js";

// The files transformers' CLIPTokenizer reads and writes (`save_pretrained`), in the shape SDXL ships them.

const addedToken = (content: string) => ({
  content,
  lstrip: false,
  normalized: true,
  rstrip: false,
  single_word: false,
});

const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

/** vocab.json in id order (JSON.stringify would hoist digit-only keys such as "0" to the front). */
function vocabJson(vocab: ReadonlyMap<string, number>): string {
  const entries = [...vocab.entries()].sort(([, a], [, b]) => a - b);
  return `{${entries.map(([token, id]) => `${JSON.stringify(token)}: ${id}`).join(", ")}}\n`;
}

/** `padToken`: "<|endoftext|>" for SDXL's tokenizer and SD 1.x, "!" for SDXL's tokenizer_2. */
export function clipTokenizerFiles(vocabulary: ClipBpeVocabulary, padToken: string): Record<string, string> {
  return {
    "vocab.json": vocabJson(vocabulary.vocab),
    "merges.txt": `#version: 0.2\n${vocabulary.merges.map(([a, b]) => `${a} ${b}`).join("\n")}\n`,
    "tokenizer_config.json": json({
      add_prefix_space: false,
      bos_token: { __type: "AddedToken", ...addedToken(START_OF_TEXT) },
      clean_up_tokenization_spaces: true,
      do_lower_case: true,
      eos_token: { __type: "AddedToken", ...addedToken(END_OF_TEXT) },
      errors: "replace",
      model_max_length: MAX_POSITIONS,
      pad_token: padToken,
      tokenizer_class: "CLIPTokenizer",
      unk_token: { __type: "AddedToken", ...addedToken(END_OF_TEXT) },
    }),
    "special_tokens_map.json": json({
      bos_token: addedToken(START_OF_TEXT),
      eos_token: addedToken(END_OF_TEXT),
      pad_token: padToken,
      unk_token: addedToken(END_OF_TEXT),
    }),
  };
}
