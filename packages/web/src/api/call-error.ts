import { Code, ConnectError } from "@connectrpc/connect";

/** The trailer in which the orchestrator names the request field an error is about. */
const FIELD_TRAILER = "dmesh-field";

/** A failed call as the page shows it: the gRPC code's name, the server's message and the field it names. */
export interface CallError {
  readonly code: string;
  readonly message: string;
  readonly field: string | undefined;
}

/**
 * A value typed into a form that cannot become a request, found before any call: named by its request field
 * as the server would name it, and reported as the server would (INVALID_ARGUMENT).
 */
export class InputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export function callError(err: unknown): CallError {
  if (err instanceof InputError) return { code: "INVALID_ARGUMENT", message: err.message, field: err.field };
  const e = ConnectError.from(err);
  const name = Code[e.code] ?? "Unknown";
  return {
    code: name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase(),
    message: e.rawMessage,
    field: e.metadata.get(FIELD_TRAILER) ?? undefined,
  };
}

/** "CODE: message" for a status line; the message already starts with the field when there is one. */
export function describe(error: CallError): string {
  return `${error.code}: ${error.message}`;
}

export function isCancel(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}
