import { Code, ConnectError } from "@connectrpc/connect";

/** A domain error: a stable gRPC code, a message for the caller and, for bad input, the offending field. */
export class DomainError extends Error {
  constructor(
    readonly code: Code,
    message: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(field ? `${field}: ${message}` : message, options);
    this.name = new.target.name;
  }
}

export class InvalidArgumentError extends DomainError {
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super(Code.InvalidArgument, message, field, options);
  }
}

export class NotFoundError extends DomainError {
  constructor(field: string, message: string) {
    super(Code.NotFound, message, field);
  }
}

export class FailedPreconditionError extends DomainError {
  constructor(message: string, field?: string) {
    super(Code.FailedPrecondition, message, field);
  }
}

export class ResourceExhaustedError extends DomainError {
  constructor(message: string) {
    super(Code.ResourceExhausted, message);
  }
}

export class UnavailableError extends DomainError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(Code.Unavailable, message, undefined, options);
  }
}

export class AbortedError extends DomainError {
  constructor(message: string) {
    super(Code.Aborted, message);
  }
}

/** Response trailer that names the request field an INVALID_ARGUMENT or NOT_FOUND is about. */
export const FIELD_TRAILER = "dmesh-field";

/**
 * The one table from thrown errors to what a caller sees. Domain errors keep their code and field;
 * cancellation and deadlines keep theirs; anything else is our bug and becomes INTERNAL without leaking
 * its message (it stays in `cause` for the logs).
 */
export function toConnectError(err: unknown, signal?: AbortSignal): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof DomainError) {
    const metadata = err.field ? { [FIELD_TRAILER]: err.field } : undefined;
    return new ConnectError(err.message, err.code, metadata, undefined, err);
  }
  if (signal?.aborted) {
    const reason = signal.reason;
    if (reason instanceof ConnectError) return reason;
    return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, err);
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}
