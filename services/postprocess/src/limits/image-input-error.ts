import { InvalidArgumentError, ResourceExhaustedError, registerDomainError } from "@dmesh/runtime/errors";

export type ImageInputErrorCode = "invalid_image" | "too_large";

/**
 * An input image we will not decode. `code` is stable for mapping to a status ("invalid_image" →
 * INVALID_ARGUMENT, "too_large" → RESOURCE_EXHAUSTED or INVALID_ARGUMENT); `field` names the request field.
 */
export class ImageInputError extends Error {
  override readonly name = "ImageInputError";

  constructor(
    readonly code: ImageInputErrorCode,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

// Too many pixels is the service's limit, not a malformed request: the caller may retry smaller.
registerDomainError(ImageInputError, (error) =>
  error.code === "too_large"
    ? new ResourceExhaustedError(error.message)
    : new InvalidArgumentError(error.field, error.reason),
);
