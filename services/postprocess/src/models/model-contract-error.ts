/**
 * A model directory that does not meet the contract this service loads by: the message names the model,
 * the file and the input or setting at fault. A request naming such a model fails with FAILED_PRECONDITION
 * (the request is fine; the server's model is not); at startup it stops the service.
 */
export class ModelContractError extends Error {
  override readonly name = "ModelContractError";

  constructor(
    readonly model: string,
    reason: string,
  ) {
    super(`model "${model}": ${reason}`);
  }
}
