import { InvalidArgumentError, registerDomainError } from "@dmesh/runtime/errors";

/** A tokenizer file (vocab.json, merges.txt, tokenizer_config.json, ...) is missing or malformed. */
export class TokenizerFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
    this.name = "TokenizerFileError";
  }
}

/** A prompt that the A1111 attention syntax cannot accept; `field` names the request field it came from. */
export class PromptSyntaxError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = "PromptSyntaxError";
  }
}

registerDomainError(PromptSyntaxError, (err) => new InvalidArgumentError(err.field, err.reason));
