import { ResourceExhaustedError, registerDomainError } from "@dmesh/runtime/errors";
import { formatBytes } from "../units/bytes.js";

/** A device cannot hold what was asked of it; says how much was asked and how much is free. */
export class InsufficientMemoryError extends Error {
  override readonly name = "InsufficientMemoryError";
  readonly code = "insufficient_memory";

  constructor(
    readonly deviceId: string,
    readonly requestedBytes: number,
    readonly freeBytes: number,
    what = "requested",
  ) {
    super(`${deviceId}: ${formatBytes(requestedBytes)} ${what} but only ${formatBytes(freeBytes)} free`);
  }
}

// Too little memory is the device's state, not our bug: RESOURCE_EXHAUSTED, and the caller may retry smaller.
registerDomainError(InsufficientMemoryError, (err) => new ResourceExhaustedError(err.message));
