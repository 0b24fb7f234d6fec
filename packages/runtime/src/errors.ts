/**
 * The gRPC status codes (the numbers every gRPC and Connect implementation shares: Connect's `Code` has the
 * same values), so that domain code names a code without importing a transport.
 */
export const ErrorCode = {
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** A domain error: a stable gRPC code, a message for the caller and, for bad input, the offending field. */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
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
    super(ErrorCode.InvalidArgument, message, field, options);
  }
}

export class NotFoundError extends DomainError {
  constructor(field: string, message: string) {
    super(ErrorCode.NotFound, message, field);
  }
}

export class AlreadyExistsError extends DomainError {
  constructor(field: string, message: string) {
    super(ErrorCode.AlreadyExists, message, field);
  }
}

export class FailedPreconditionError extends DomainError {
  constructor(message: string, field?: string) {
    super(ErrorCode.FailedPrecondition, message, field);
  }
}

export class ResourceExhaustedError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.ResourceExhausted, message);
  }
}

export class UnauthenticatedError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.Unauthenticated, message);
  }
}

export class PermissionDeniedError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.PermissionDenied, message);
  }
}

export class UnavailableError extends DomainError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.Unavailable, message, undefined, options);
  }
}

export class AbortedError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.Aborted, message);
  }
}

/** Most characters of a caller's value an error message quotes: an id we make (a UUID, a sha256) fits. */
export const MAX_QUOTE_CHARS = 64;

/** A caller's value as an error message quotes it: at most a short prefix, and how long it really was. */
export function quote(value: string, max = MAX_QUOTE_CHARS): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, max))}… (${value.length} characters)`;
}

// biome-ignore lint/suspicious/noExplicitAny: a constructor of any error type, whatever its arguments
type ErrorType<E extends Error> = abstract new (...args: any[]) => E;
const registered: { type: ErrorType<Error>; toDomain: (err: Error) => DomainError }[] = [];

/**
 * Adds a domain's own error type to the one error table: `toDomain` says which DomainError (code, message,
 * field) a caller sees for it. Registered next to the error's class, so that any code that can throw it has
 * registered it; the first registration that matches wins.
 */
export function registerDomainError<E extends Error>(
  type: ErrorType<E>,
  toDomain: (err: E) => DomainError,
): void {
  registered.push({ type, toDomain: toDomain as (err: Error) => DomainError });
}

/** The DomainError a thrown value stands for: itself, or what its registered type maps to; else undefined. */
export function asDomainError(err: unknown): DomainError | undefined {
  if (err instanceof DomainError) return err;
  for (const { type, toDomain } of registered) if (err instanceof type) return toDomain(err);
  return undefined;
}
