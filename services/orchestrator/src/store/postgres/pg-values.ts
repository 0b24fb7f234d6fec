/** A Buffer over the same memory (node-postgres sends a Buffer as bytea). */
export function bytea(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
