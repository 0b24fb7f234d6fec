import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import { requestHeaderValue } from "./grpc-server.js";
import { REQUEST_ID_HEADER } from "./request-scope.js";
import { grpcCodeOf, type RpcSlot, serverRpcMetrics } from "./rpc-metrics.js";
import { onStreamEnd } from "./stream-end.js";
import { activeTracer, failSpan, isTraced } from "./tracing.js";

export interface ObserveOptions {
  /** `rpc.system.name` of the server's spans: "grpc" (grpc-js) or "connect_rpc" (connect-node). */
  readonly system: "grpc" | "connect_rpc";
  /** grpc_server_* metrics; on unless false (a service that serves no metrics records none). */
  readonly metrics?: boolean;
}

// Codes a server span counts as its own failure (OpenTelemetry's gRPC conventions); the rest are the caller's.
const SERVER_ERRORS = new Set([
  "Unknown",
  "DeadlineExceeded",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
]);

/** Reads a request's W3C headers without making a Headers object where the call came over grpc-js. */
const requestGetter: TextMapGetter<UnaryRequest | StreamRequest> = {
  keys: () => [],
  get: (req, key) => requestHeaderValue(req, key) ?? undefined,
};

/** The observing interceptor, or none where it would have nothing to do (no metrics, no tracing). */
export function observeInterceptors(options: ObserveOptions): Interceptor[] {
  return options.metrics === false && !activeTracer() ? [] : [createObserveInterceptor(options)];
}

/**
 * Server interceptor, outermost: go-grpc-prometheus's grpc_server_* metrics for every call, and, when tracing
 * is on, one SERVER span per call continuing the caller's W3C trace context, active while the handler runs
 * (a stream's handler included, message by message), so that downstream calls and log lines join it.
 */
export function createObserveInterceptor(options: ObserveOptions): Interceptor {
  const metrics = options.metrics !== false;
  const tracer = activeTracer();
  return (next) => async (req) => {
    const slot = metrics ? serverRpcMetrics.slot(req.method) : undefined;
    const startedAt = performance.now();
    if (slot) {
      slot.started++;
      // The request message of unary and server-streaming calls; streamed input is not counted.
      if (req.method.methodKind === "unary" || req.method.methodKind === "server_streaming") slot.received++;
    }
    let span: Span | undefined;
    let ctx: Context | undefined;
    if (tracer && isTraced(req.service.typeName)) {
      const parent = propagation.extract(ROOT_CONTEXT, req, requestGetter);
      const rpcMethod = `${req.service.typeName}/${req.method.name}`;
      span = tracer.startSpan(
        rpcMethod,
        {
          kind: SpanKind.SERVER,
          attributes: {
            "rpc.system.name": options.system,
            "rpc.method": rpcMethod,
            "dmesh.request_id": requestHeaderValue(req, REQUEST_ID_HEADER) ?? "",
          },
        },
        parent,
      );
      ctx = trace.setSpan(parent, span);
    }
    const finish = (err?: unknown) => {
      const code = grpcCodeOf(err);
      slot?.finish(code, startedAt);
      if (span) endSpan(span, code, err, SERVER_ERRORS.has(code));
    };
    try {
      const res = ctx ? await context.with(ctx, next, undefined, req) : await next(req);
      if (!res.stream) {
        if (slot) slot.sent++;
        finish();
        return res;
      }
      const { service, method, header, trailer } = res;
      const message = onStreamEnd(observedMessages(res.message, slot, ctx), finish);
      return { stream: true, service, method, header, trailer, message };
    } catch (err) {
      finish(err);
      throw err;
    }
  };
}

/** A stream's messages counted as sent, each produced inside the call's trace context. */
function observedMessages<T>(
  messages: AsyncIterable<T>,
  slot: RpcSlot | undefined,
  ctx: Context | undefined,
): AsyncIterable<T> {
  if (!slot && !ctx) return messages;
  return {
    [Symbol.asyncIterator]() {
      const it = messages[Symbol.asyncIterator]();
      const pull = ctx ? () => context.with(ctx, () => it.next()) : () => it.next();
      return {
        next: () =>
          pull().then((result) => {
            if (slot && !result.done) slot.sent++;
            return result;
          }),
        return: (value?: unknown) =>
          it.return?.(value) ?? Promise.resolve({ done: true as const, value: value as T }),
      };
    },
  };
}

/** Ends an RPC span with its status: `rpc.status_code` as gRPC names it, ERROR where the code is a failure. */
export function endSpan(span: Span, code: string, err: unknown, failed: boolean): void {
  span.setAttribute("rpc.status_code", statusName(code));
  if (failed) failSpan(span, err);
  else if (err === undefined) span.setStatus({ code: SpanStatusCode.OK });
  span.end();
}

/** "InvalidArgument" as gRPC spells it: "INVALID_ARGUMENT" ("Canceled": "CANCELLED"). */
function statusName(code: string): string {
  return code === "Canceled" ? "CANCELLED" : code.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
