import { DTYPE_SIZES, type Dtype, isDtype } from "./dtypes.js";
import { quoteKey, SafetensorsError } from "./safetensors-error.js";

// The format (huggingface/safetensors, docs "Format"): an unsigned little-endian 64-bit header length
// N, N bytes of UTF-8 JSON that starts with "{", then the tensors' bytes. The JSON maps each tensor's
// name to {dtype, shape, data_offsets: [begin, end]} (offsets into the bytes after the header) and may
// hold "__metadata__", a map of strings to strings. As the reference reader checks, the tensors must
// tile the data exactly: no overlap, no gap, nothing after the last.

/** Where the header's length is stored, and so where the JSON starts. */
export const LENGTH_PREFIX_BYTES = 8;

/**
 * Default largest header we parse. The reference implementation allows 100 MB; a LoRA's header is
 * tens of kilobytes plus kohya's training metadata (tag frequencies can reach a few megabytes).
 */
export const DEFAULT_MAX_HEADER_BYTES = 32 * 1024 * 1024;

export const METADATA_KEY = "__metadata__";

export interface TensorInfo {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Byte range within the data section (after the header). */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** `__metadata__`, empty when the file has none. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every tensor, in the header's order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Absolute file offset of the data section (8 + header length). */
  readonly dataOffset: number;
  /** Bytes in the data section. */
  readonly dataBytes: number;
}

export interface HeaderLimits {
  /** Largest header length accepted; see DEFAULT_MAX_HEADER_BYTES. */
  readonly maxHeaderBytes?: number;
}

/**
 * Reads the header length from the first 8 bytes of a file of `fileBytes` bytes and checks it against
 * the limit and the file's size, before anything larger is read.
 */
export function readHeaderLength(
  file: string,
  prefix: Uint8Array,
  fileBytes: number,
  limits: HeaderLimits = {},
): number {
  if (prefix.length < LENGTH_PREFIX_BYTES || fileBytes < LENGTH_PREFIX_BYTES) {
    throw new SafetensorsError(file, `is ${fileBytes} bytes, shorter than the 8-byte header length`);
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, LENGTH_PREFIX_BYTES).getBigUint64(0, true);
  const max = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (length > BigInt(max)) {
    throw new SafetensorsError(file, `header of ${length} bytes is larger than the limit of ${max} bytes`);
  }
  const n = Number(length);
  if (LENGTH_PREFIX_BYTES + n > fileBytes) {
    throw new SafetensorsError(
      file,
      `header of ${n} bytes runs past the end of the file (${fileBytes} bytes): the file is truncated`,
    );
  }
  if (n < 2) throw new SafetensorsError(file, `header of ${n} bytes cannot hold a JSON object`);
  return n;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses and checks the JSON header; `dataBytes` is the file's size less the prefix and header. */
export function parseHeader(file: string, json: Uint8Array, dataBytes: number): SafetensorsHeader {
  let text: string;
  try {
    text = utf8.decode(json);
  } catch (cause) {
    throw new SafetensorsError(file, "header is not valid UTF-8", undefined, { cause });
  }
  if (!text.startsWith("{")) throw new SafetensorsError(file, 'header does not start with "{"');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new SafetensorsError(file, "header is not valid JSON", undefined, { cause });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new SafetensorsError(file, "header is not a JSON object");
  }

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [key, value] of Object.entries(parsed)) {
    if (key === METADATA_KEY) metadata = readMetadata(file, value);
    else tensors.set(key, readTensorInfo(file, key, value, dataBytes));
  }
  checkTiling(file, tensors, dataBytes);
  return { metadata, tensors, dataOffset: LENGTH_PREFIX_BYTES + json.length, dataBytes };
}

function readMetadata(file: string, value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SafetensorsError(file, "must be a map of strings to strings", METADATA_KEY);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw new SafetensorsError(
        file,
        `value of ${JSON.stringify(k.slice(0, 60))} is not a string`,
        METADATA_KEY,
      );
    }
    out[k] = v;
  }
  return out;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function readTensorInfo(file: string, key: string, value: unknown, dataBytes: number): TensorInfo {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SafetensorsError(file, "entry is not an object", key);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isDtype(dtype)) {
    const shown = typeof dtype === "string" ? JSON.stringify(dtype.slice(0, 20)) : String(dtype);
    throw new SafetensorsError(file, `unknown dtype ${shown}`, key);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new SafetensorsError(file, "shape is not a list of non-negative integers", key);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw new SafetensorsError(file, "data_offsets is not a pair of non-negative integers", key);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end)
    throw new SafetensorsError(file, `data_offsets [${begin}, ${end}] end before they begin`, key);
  if (end > dataBytes) {
    throw new SafetensorsError(
      file,
      `data_offsets [${begin}, ${end}] run past the end of the data (${dataBytes} bytes): the file is truncated`,
      key,
    );
  }
  // Multiply step by step so an absurd shape stops at a number that is still exact.
  let bytes = DTYPE_SIZES[dtype];
  for (const d of shape as number[]) {
    bytes *= d;
    if (bytes > Number.MAX_SAFE_INTEGER) break;
  }
  if (bytes !== end - begin) {
    const needs = bytes > Number.MAX_SAFE_INTEGER ? `more than ${Number.MAX_SAFE_INTEGER}` : `${bytes}`;
    throw new SafetensorsError(
      file,
      `shape [${shape.join(", ")}] of ${dtype} needs ${needs} bytes, data_offsets give ${end - begin}`,
      key,
    );
  }
  return { dtype, shape: shape as number[], begin, end };
}

/** The tensors must cover the data section exactly once, as the reference reader requires. */
function checkTiling(file: string, tensors: ReadonlyMap<string, TensorInfo>, dataBytes: number): void {
  const ordered = [...tensors].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  let previous: string | undefined;
  for (const [key, info] of ordered) {
    if (info.begin < position) {
      throw new SafetensorsError(
        file,
        `bytes [${info.begin}, ${info.end}] overlap tensor ${quoteKey(previous ?? "")}`,
        key,
      );
    }
    if (info.begin > position) {
      throw new SafetensorsError(
        file,
        `${info.begin - position} bytes before this tensor belong to none`,
        key,
      );
    }
    position = info.end;
    previous = key;
  }
  if (position !== dataBytes) {
    throw new SafetensorsError(file, `${dataBytes - position} bytes after the last tensor belong to none`);
  }
}
