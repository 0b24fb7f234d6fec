import { Code, ConnectError } from "@connectrpc/connect";
import { asDomainError } from "./errors.js";

/** Response trailer that names the request field an INVALID_ARGUMENT or NOT_FOUND is about. */
export const FIELD_TRAILER = "dmesh-field";

/**
 * Longest error message or field name sent back. Both travel in headers (`grpc-message`, the field trailer):
 * an unbounded one made clients reset the stream (a 200,000-character id came back as INTERNAL).
 */
export const MAX_ERROR_MESSAGE_CHARS = 512;
const MAX_FIELD_CHARS = 128;

function bounded(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * The one table from thrown errors to what a caller sees. Domain errors, and the error types domains
 * registered (`registerDomainError`), keep their code and field; cancellation and deadlines keep theirs;
 * anything else is our bug and becomes INTERNAL without leaking its message (it stays in `cause` for the
 * logs). Messages and field names are cut to a bounded length, since they travel in headers.
 */
export function toConnectError(err: unknown, signal?: AbortSignal): ConnectError {
  if (err instanceof ConnectError) {
    if (err.rawMessage.length <= MAX_ERROR_MESSAGE_CHARS) return err;
    const message = bounded(err.rawMessage, MAX_ERROR_MESSAGE_CHARS);
    const shortened = new ConnectError(message, err.code, err.metadata, undefined, err.cause ?? err);
    return Object.assign(shortened, { details: err.details });
  }
  const domain = asDomainError(err);
  if (domain) {
    const metadata = domain.field ? { [FIELD_TRAILER]: bounded(domain.field, MAX_FIELD_CHARS) } : undefined;
    return new ConnectError(
      bounded(domain.message, MAX_ERROR_MESSAGE_CHARS),
      domain.code as number as Code,
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
