import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { SafetensorsFile } from "@dmesh/safetensors";

// The hashes A1111 writes into infotext, so our images name adapters as A1111's do:
// - `Lora hashes: "name: hash"` (extensions-builtin/Lora/network.py, NetworkOnDisk): the file's
//   `sshs_model_hash` metadata when kohya-ss stored one, else the "addnet" hash of a .safetensors file
//   (modules/hashes.py, addnet_hash_safetensors, from kohya-ss' train_util): SHA-256 of every byte after
//   the header, so editing the metadata does not change it. `shorthash` is its first 12 hex digits.
// - `TI hashes: "name: hash"` (modules/textual_inversion, Embedding.set_hash): SHA-256 of the whole
//   file, first 12 hex digits.
// - ControlNet infotext `Model: name [hash]`: the extension shows sd_models.model_hash, the old
//   checkpoint hash: SHA-256 of the 64 KiB at offset 1 MiB (of nothing for a smaller file), 8 hex digits.

export const SHORT_HASH_LENGTH = 12;

export interface AdapterHash {
  readonly sha256: string;
  /** What A1111 shows: the first 12 hex digits. */
  readonly shortHash: string;
}

function hashOf(sha256: string): AdapterHash {
  return { sha256, shortHash: sha256.slice(0, SHORT_HASH_LENGTH) };
}

/** SHA-256 (hex) of a file's bytes from `start` to its end, streamed. */
export async function sha256OfFile(path: string, start = 0): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { start, highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A1111's LoRA hash of an open safetensors file. */
export async function loraHash(file: SafetensorsFile): Promise<AdapterHash> {
  const stored = file.metadata.sshs_model_hash;
  if (stored !== undefined && /^[0-9a-fA-F]{64}$/.test(stored)) return hashOf(stored.toLowerCase());
  return hashOf(await sha256OfFile(file.path, file.dataOffset));
}

/** A1111's textual-inversion hash of a file. */
export async function embeddingHash(path: string): Promise<AdapterHash> {
  return hashOf(await sha256OfFile(path));
}

/** AUTOMATIC1111's `sd_models.model_hash` of a file: what the ControlNet extension shows beside a model. */
export async function a1111ModelHash(path: string): Promise<string> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(0x10000);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0x100000);
    return createHash("sha256").update(buffer.subarray(0, bytesRead)).digest("hex").slice(0, 8);
  } finally {
    await handle.close();
  }
}
