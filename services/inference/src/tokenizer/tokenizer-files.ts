import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  CLIP_MAX_LENGTH,
  CLIP_SPECIAL_TOKENS,
  type ClipTokenizerDefinition,
  type SpecialTokens,
} from "./clip-tokenizer.js";
import { TokenizerFileError } from "./tokenizer-errors.js";

/** Hugging Face keeps at most this many merges: CLIP's 49,152 BPE tokens less 256 bytes and 2 specials. */
const MAX_MERGES = 49152 - 256 - 2;

/** Hugging Face writes int(1e30) as `model_max_length` when a tokenizer sets no limit. */
const isUnsetMaxLength = (value: number) => value > Number.MAX_SAFE_INTEGER;

const SPECIAL_FIELDS: ReadonlyArray<readonly [keyof SpecialTokens, string]> = [
  ["bos", "bos_token"],
  ["eos", "eos_token"],
  ["unk", "unk_token"],
  ["pad", "pad_token"],
];

type JsonObject = Record<string, unknown>;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new TokenizerFileError(file, `cannot be read: ${(err as Error).message}`, { cause: err });
  }
}

async function readRequired(file: string): Promise<string> {
  const text = await readOptional(file);
  if (text === undefined) {
    throw new TokenizerFileError(file, "missing (a CLIP tokenizer needs vocab.json and merges.txt)");
  }
  return text;
}

function parseJsonObject(file: string, text: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TokenizerFileError(file, `is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isObject(value)) throw new TokenizerFileError(file, "must hold a JSON object");
  return value;
}

function parseVocab(file: string, text: string): Map<string, number> {
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(parseJsonObject(file, text))) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) {
      throw new TokenizerFileError(
        file,
        `the id of token ${JSON.stringify(token)} must be a non-negative integer`,
      );
    }
    vocab.set(token, id as number);
  }
  if (vocab.size === 0) throw new TokenizerFileError(file, "has no tokens");
  return vocab;
}

/** As Hugging Face reads it: the first line is the `#version` header and is always skipped. */
function parseMerges(file: string, text: string): Array<[string, string]> {
  const lines = text
    .trim()
    .split("\n")
    .slice(1, MAX_MERGES + 1);
  return lines.map((line, index) => {
    const symbols = line.trim().split(/\s+/);
    if (symbols.length !== 2) {
      throw new TokenizerFileError(file, `line ${index + 2} must hold two symbols separated by a space`);
    }
    return symbols as [string, string];
  });
}

/** A special token is written either as its text or as an AddedToken object with `content`. */
function tokenContent(file: string, source: JsonObject, field: string): string | undefined {
  const value = source[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (isObject(value) && typeof value.content === "string") return value.content;
  throw new TokenizerFileError(file, `${field} must be a string or an object with a string "content"`);
}

function parseAddedTokens(file: string, config: JsonObject): Map<string, number> {
  const decoder = config.added_tokens_decoder;
  const added = new Map<string, number>();
  if (decoder === undefined) return added;
  if (!isObject(decoder)) throw new TokenizerFileError(file, "added_tokens_decoder must be an object");
  for (const [key, entry] of Object.entries(decoder)) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(id)) {
      throw new TokenizerFileError(
        file,
        `added_tokens_decoder key ${JSON.stringify(key)} must be a token id`,
      );
    }
    const content = isObject(entry) ? entry.content : undefined;
    if (typeof content !== "string" || content.length === 0) {
      throw new TokenizerFileError(file, `added_tokens_decoder["${key}"].content must be a non-empty string`);
    }
    added.set(content, id);
  }
  return added;
}

function parseModelMaxLength(file: string, config: JsonObject): number {
  const value = config.model_max_length;
  if (value === undefined || value === null) return CLIP_MAX_LENGTH;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TokenizerFileError(file, "model_max_length must be a number");
  }
  if (isUnsetMaxLength(value)) return CLIP_MAX_LENGTH;
  if (!Number.isInteger(value) || value < 3) {
    throw new TokenizerFileError(file, `model_max_length must be an integer >= 3, got ${value}`);
  }
  return value;
}

/**
 * Reads `vocab.json` and `merges.txt` (required) and `tokenizer_config.json` / `special_tokens_map.json`
 * (optional; the map overrides the config, as in `PreTrainedTokenizerBase.from_pretrained`).
 */
export async function readClipTokenizerDefinition(dir: string): Promise<ClipTokenizerDefinition> {
  const vocabFile = join(dir, "vocab.json");
  const mergesFile = join(dir, "merges.txt");
  const configFile = join(dir, "tokenizer_config.json");
  const mapFile = join(dir, "special_tokens_map.json");
  const [vocabText, mergesText, configText, mapText] = await Promise.all([
    readRequired(vocabFile),
    readRequired(mergesFile),
    readOptional(configFile),
    readOptional(mapFile),
  ]);
  const vocab = parseVocab(vocabFile, vocabText);
  const merges = parseMerges(mergesFile, mergesText);
  const config = configText === undefined ? {} : parseJsonObject(configFile, configText);
  const map = mapText === undefined ? {} : parseJsonObject(mapFile, mapText);
  const addedTokens = parseAddedTokens(configFile, config);

  const specialTokens: Partial<SpecialTokens> = {};
  for (const [key, field] of SPECIAL_FIELDS) {
    const fromMap = tokenContent(mapFile, map, field);
    const fromConfig = tokenContent(configFile, config, field);
    const token = fromMap ?? fromConfig ?? CLIP_SPECIAL_TOKENS[key];
    if (!vocab.has(token) && !addedTokens.has(token)) {
      const source = fromMap !== undefined ? mapFile : fromConfig !== undefined ? configFile : vocabFile;
      throw new TokenizerFileError(source, `${field} ${JSON.stringify(token)} is not in vocab.json`);
    }
    specialTokens[key] = token;
  }

  return {
    vocab,
    merges,
    addedTokens,
    specialTokens,
    modelMaxLength: parseModelMaxLength(configFile, config),
  };
}
