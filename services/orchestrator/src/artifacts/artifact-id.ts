import { InvalidArgumentError, quote } from "@dmesh/runtime/errors";

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** An artifact's id as a caller sends it: the sha256 of its bytes in lowercase hex, or INVALID_ARGUMENT. */
export function checkArtifactId(value: string, field: string): string {
  if (!SHA256_HEX.test(value))
    throw new InvalidArgumentError(field, `must be a sha256 hex digest, got ${quote(value)}`);
  return value;
}
