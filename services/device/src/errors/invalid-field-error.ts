/** A request value that domain code refuses; `field` names it so the transport can report INVALID_ARGUMENT. */
export class InvalidFieldError extends Error {
  override readonly name = "InvalidFieldError";
  readonly code = "invalid_argument";

  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}
