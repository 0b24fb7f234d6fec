import { randomUUID } from "node:crypto";
import type { CallOptions, HandlerContext } from "@connectrpc/connect";
import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "./logger.js";

/** Header that carries one request id across every hop. */
export const REQUEST_ID_HEADER = "x-request-id";

export const requestIdKey = createContextKey<string>("", { description: "request id" });
export const loggerKey = createContextKey<Logger | undefined>(undefined, { description: "request logger" });

/** What domain code gets instead of transport objects: cancellation, remaining time, logger, request id. */
export interface RequestScope {
  readonly requestId: string;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  timeoutMs(): number | undefined;
}

export function newRequestId(): string {
  return randomUUID();
}

/** The incoming request id (the header's value), or a new one; bounded so a client cannot flood the logs. */
export function requestIdFrom(headerValue: string | null | undefined): string {
  const given = headerValue?.trim();
  return given && given.length <= 128 && /^[\w.:-]+$/.test(given) ? given : newRequestId();
}

export function scopeFrom(ctx: HandlerContext, fallback: Logger): RequestScope {
  return {
    requestId: ctx.values.get(requestIdKey) || requestIdFrom(ctx.requestHeader.get(REQUEST_ID_HEADER)),
    logger: ctx.values.get(loggerKey) ?? fallback,
    signal: ctx.signal,
    timeoutMs: ctx.timeoutMs,
  };
}

/** Options for a downstream call made on behalf of `scope`: same signal, deadline and request id. */
export function callOptions(scope: Pick<RequestScope, "requestId" | "signal" | "timeoutMs">): CallOptions {
  return {
    signal: scope.signal,
    timeoutMs: scope.timeoutMs(),
    headers: { [REQUEST_ID_HEADER]: scope.requestId },
  };
}
