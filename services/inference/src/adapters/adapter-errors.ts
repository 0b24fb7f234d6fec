import { basename } from "node:path";
import { FailedPreconditionError } from "@dmesh/runtime/errors";
import { SafetensorsError } from "@dmesh/safetensors";

const MAX_QUOTED_KEY = 120;

/**
 * An adapter file that cannot be used with this model: unreadable, of a family we do not apply, or
 * made for another base model. FAILED_PRECONDITION; the message names the file (base name) and, where
 * one is at fault, the key. `field` is the request field that asked for the adapter, when known.
 */
export class AdapterFileError extends FailedPreconditionError {
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly key?: string,
    field?: string,
    options?: { cause?: unknown },
  ) {
    super(`${basename(file)}: ${key === undefined ? "" : `${quote(key)}: `}${problem}`, field);
    if (options?.cause !== undefined) this.cause = options.cause;
    this.name = "AdapterFileError";
  }

  /** The same problem reported against a request field (e.g. `spec.adapters[1]`). */
  forField(field: string): AdapterFileError {
    return new AdapterFileError(this.file, this.problem, this.key, field, { cause: this.cause });
  }

  /** A safetensors reader's refusal, as an adapter error for the same file and key. */
  static from(error: SafetensorsError): AdapterFileError {
    return new AdapterFileError(error.file, error.problem, error.key, undefined, { cause: error });
  }
}

export function quote(key: string): string {
  return JSON.stringify(key.length > MAX_QUOTED_KEY ? `${key.slice(0, MAX_QUOTED_KEY)}…` : key);
}

/** Runs `work`, turning a SafetensorsError into an AdapterFileError. */
export async function asAdapterError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof SafetensorsError) throw AdapterFileError.from(error);
    throw error;
  }
}
