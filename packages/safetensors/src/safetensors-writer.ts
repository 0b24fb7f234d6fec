import { randomBytes } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import { fromFloat32, type WritableDtype } from "./dtypes.js";
import { SafetensorsError } from "./safetensors-error.js";
import { LENGTH_PREFIX_BYTES, METADATA_KEY } from "./safetensors-header.js";

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
  /** Values in row-major (PyTorch) order. */
  readonly data: Float32Array;
}

/**
 * A safetensors file's bytes: tensors in the order given, the header padded with spaces so the data
 * starts 8-byte aligned (as the reference writer does).
 */
export function encodeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header[METADATA_KEY] = { ...metadata };
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === METADATA_KEY || Object.hasOwn(header, t.name)) {
      throw new SafetensorsError("<memory>", "is written twice or is reserved", t.name);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new SafetensorsError(
        "<memory>",
        `shape [${t.shape.join(", ")}] holds ${count} values, got ${t.data.length}`,
        t.name,
      );
    }
    const bytes = fromFloat32(t.dtype, t.data);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((LENGTH_PREFIX_BYTES + json.length) / 8) * 8 - LENGTH_PREFIX_BYTES;
  const out = new Uint8Array(LENGTH_PREFIX_BYTES + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, LENGTH_PREFIX_BYTES);
  out.fill(0x20, LENGTH_PREFIX_BYTES + json.length, LENGTH_PREFIX_BYTES + padded);
  let position = LENGTH_PREFIX_BYTES + padded;
  for (const part of parts) {
    out.set(part, position);
    position += part.length;
  }
  return out;
}

/** Writes a safetensors file whole or not at all (a temporary file renamed into place). */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Readonly<Record<string, string>>,
): Promise<number> {
  const bytes = encodeSafetensors(tensors, metadata);
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return bytes.length;
}
