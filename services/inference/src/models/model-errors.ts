import { FailedPreconditionError } from "@dmesh/runtime";

/** A model directory that cannot be used: missing or corrupt files, or an I/O contract we do not know. */
export class ModelContractError extends FailedPreconditionError {
  constructor(model: string, message: string) {
    super(`model "${model}": ${message}`, "models.base");
    this.name = "ModelContractError";
  }
}
