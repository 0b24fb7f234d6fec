import { InvalidArgumentError } from "@dmesh/runtime/errors";

/** Returns `value` when it is a finite number in [min, max]; otherwise throws naming `field`. */
export function checkNumberInRange(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `must be a number from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** Returns `value` when it is an integer in [min, max]; otherwise throws naming `field`. */
export function checkIntegerInRange(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** Returns `value` when it is one of `allowed`; otherwise throws listing the allowed values. */
export function checkOneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(field, `must be one of ${allowed.join(", ")}, got ${describe(value)}`);
  }
  return value as T;
}

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}
