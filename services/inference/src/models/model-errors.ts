import { FailedPreconditionError } from "@dmesh/runtime";

/** A model directory that cannot be used: missing or corrupt files, or an I/O contract we do not know. */
export class ModelContractError extends FailedPreconditionError {
  constructor(
    readonly model: string,
    readonly detail: string,
    field = "models.base",
  ) {
    super(`model "${model}": ${detail}`, field);
    this.name = "ModelContractError";
  }

  /** The same problem reported against another request field (a suite's refiner rather than its base). */
  forField(field: string): ModelContractError {
    return field === this.field ? this : new ModelContractError(this.model, this.detail, field);
  }
}
