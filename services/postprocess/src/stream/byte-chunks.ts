import { InvalidArgumentError } from "@dmesh/runtime/errors";

/**
 * Joins streamed chunks into one buffer of the `expected` length declared up front (allocated once, no
 * copies beyond the chunk's), or throws naming `field` when the stream sends more or fewer bytes.
 */
export async function collectBytes(
  chunks: AsyncIterable<Uint8Array>,
  expected: number,
  field: string,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(expected);
  let received = 0;
  for await (const chunk of chunks) {
    if (received + chunk.byteLength > expected) {
      throw new InvalidArgumentError(field, `the stream sends more than the ${expected} bytes declared`);
    }
    bytes.set(chunk, received);
    received += chunk.byteLength;
  }
  if (received !== expected) {
    throw new InvalidArgumentError(
      field,
      `the stream ended after ${received} of the ${expected} bytes declared`,
    );
  }
  return bytes;
}

/** Views of `bytes` of at most `size` bytes each, in order (none for empty bytes). */
export function* splitBytes(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += size) yield bytes.subarray(at, at + size);
}
