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

export class AlreadyExistsError extends DomainError {
  constructor(field: string, message: string) {
    super(Code.AlreadyExists, message, field);
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

export class UnauthenticatedError extends DomainError {
  constructor(message: string) {
    super(Code.Unauthenticated, message);
  }
}

export class PermissionDeniedError extends DomainError {
  constructor(message: string) {
    super(Code.PermissionDenied, message);
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

/** Most characters of a caller's value an error message quotes: an id we make (a UUID, a sha256) fits. */
export const MAX_QUOTE_CHARS = 64;
/**
 * Longest error message or field name sent back. Both travel in headers (`grpc-message`, the field trailer):
 * an unbounded one made clients reset the stream (a 200,000-character id came back as INTERNAL).
 */
export const MAX_ERROR_MESSAGE_CHARS = 512;
const MAX_FIELD_CHARS = 128;

/** A caller's value as an error message quotes it: at most a short prefix, and how long it really was. */
export function quote(value: string, max = MAX_QUOTE_CHARS): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max))}… (${value.length} characters)`;
}

function bounded(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * The one table from thrown errors to what a caller sees. Domain errors keep their code and field;
 * cancellation and deadlines keep theirs; anything else is our bug and becomes INTERNAL without leaking
 * its message (it stays in `cause` for the logs). Messages and field names are cut to a bounded length, since
 * they travel in headers.
 */
export function toConnectError(err: unknown, signal?: AbortSignal): ConnectError {
  if (err instanceof ConnectError) {
    if (err.rawMessage.length <= MAX_ERROR_MESSAGE_CHARS) return err;
    const message = bounded(err.rawMessage, MAX_ERROR_MESSAGE_CHARS);
    const shortened = new ConnectError(message, err.code, err.metadata, undefined, err.cause ?? err);
    return Object.assign(shortened, { details: err.details });
  }
  if (err instanceof DomainError) {
    const metadata = err.field ? { [FIELD_TRAILER]: bounded(err.field, MAX_FIELD_CHARS) } : undefined;
    return new ConnectError(
      bounded(err.message, MAX_ERROR_MESSAGE_CHARS),
      err.code,
      metadata,
      undefined,
      err,
    );
  }
  if (signal?.aborted) {
    const reason = signal.reason;
    if (reason instanceof ConnectError) return reason;
    return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, err);
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}
