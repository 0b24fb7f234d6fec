import { FailedPreconditionError } from "@dmesh/runtime/errors";

/**
 * A model that does not meet the contract its loader works by: a missing or corrupt file, an input, output
 * or setting we do not know. The message names the model, the file and the tensor, input or setting at
 * fault. A request naming such a model fails with FAILED_PRECONDITION (the request is fine; the server's
 * model is not); `field` is the request field that named the model, when there was one.
 */
export class ModelContractError extends FailedPreconditionError {
  constructor(
    readonly model: string,
    readonly detail: string,
    field?: string,
  ) {
    super(`model "${model}": ${detail}`, field);
    this.name = "ModelContractError";
  }

  /** The same problem reported against another request field (a suite's refiner rather than its base). */
  forField(field: string): ModelContractError {
    return field === this.field ? this : new ModelContractError(this.model, this.detail, field);
  }
}
