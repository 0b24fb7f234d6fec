import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { LIMITS } from "./limits.js";

/**
 * A string field's length checked at the edge, before it is looked up, stored or quoted: an id longer than any
 * we make cannot name anything, and an unbounded one must not reach a log line or a header.
 */
function checkLength(value: string, max: number, field: string): string {
  if (value.length > max)
    throw new InvalidArgumentError(field, `is longer than ${max} characters (${value.length})`);
  return value;
}

/** An id (session, batch, artifact, workflow, request; a page token): at most LIMITS.maxIdChars. */
export function checkId(value: string, field: string): string {
  return checkLength(value, LIMITS.maxIdChars, field);
}

/** A name (a model, an image input, a batch axis field): at most LIMITS.maxNameChars. */
export function checkName(value: string, field: string): string {
  return checkLength(value, LIMITS.maxNameChars, field);
}

/** A required id: present, and bounded. */
export function requiredId(value: string, field: string): string {
  if (!value) throw new InvalidArgumentError(field, "is required");
  return checkId(value, field);
}
