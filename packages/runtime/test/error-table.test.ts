import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { FIELD_TRAILER, MAX_ERROR_MESSAGE_CHARS, toConnectError } from "../src/error-table.js";
import {
  ErrorCode,
  InvalidArgumentError,
  ResourceExhaustedError,
  registerDomainError,
} from "../src/errors.js";

class QuotaSpentError extends Error {}
class BadPixelsError extends Error {
  constructor(readonly field: string) {
    super("not RGB");
  }
}
registerDomainError(QuotaSpentError, (err) => new ResourceExhaustedError(err.message));
registerDomainError(BadPixelsError, (err) => new InvalidArgumentError(err.field, err.message));

describe("the one error table", () => {
  it("names every gRPC code with Connect's number, so domain code needs no transport to name one", () => {
    const connectNames = Object.keys(Code).filter((k) => Number.isNaN(Number(k)));
    expect(Object.keys(ErrorCode).sort()).toEqual(connectNames.sort());
    for (const [name, value] of Object.entries(ErrorCode)) expect(Code[value], name).toBe(name);
  });

  it("maps a domain error to its code, message and field trailer", () => {
    const ce = toConnectError(new InvalidArgumentError("spec.size.width", "must be a multiple of 8"));
    expect([ce.code, ce.rawMessage]).toEqual([
      Code.InvalidArgument,
      "spec.size.width: must be a multiple of 8",
    ]);
    expect(ce.metadata.get(FIELD_TRAILER)).toBe("spec.size.width");
  });

  it("maps the error types a domain registered, field included", () => {
    expect(toConnectError(new QuotaSpentError("3 of 3 sessions running")).code).toBe(Code.ResourceExhausted);
    const ce = toConnectError(new BadPixelsError("image.bytes"));
    expect([ce.code, ce.metadata.get(FIELD_TRAILER)]).toEqual([Code.InvalidArgument, "image.bytes"]);
  });

  it("hides anything else behind INTERNAL, and says CANCELED when the call was cancelled", () => {
    const bug = new TypeError("cannot read properties of undefined (reading 'secret')");
    const ce = toConnectError(bug);
    expect([ce.code, ce.rawMessage, ce.cause]).toEqual([Code.Internal, "internal error", bug]);
    const controller = new AbortController();
    controller.abort();
    expect(toConnectError(bug, controller.signal).code).toBe(Code.Canceled);
  });

  it("bounds a message that travels in headers", () => {
    const ce = toConnectError(new ConnectError("x".repeat(5000), Code.NotFound));
    expect([ce.code, ce.rawMessage.length]).toEqual([Code.NotFound, MAX_ERROR_MESSAGE_CHARS]);
  });
});
