import type {
  DescMessage,
  DescMethod,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import { type Context, context, propagation, type Span, SpanKind, trace } from "@opentelemetry/api";
import type { GrpcTransport } from "./grpc-transport.js";
import type { HeadersInit } from "./metadata.js";
import { endSpan } from "./observe-interceptor.js";
import { clientRpcMetrics, grpcCodeOf, type RpcSlot } from "./rpc-metrics.js";
import { onStreamEnd } from "./stream-end.js";
import { activeTracer, isTraced } from "./tracing.js";

/**
 * `inner` with go-grpc-prometheus's grpc_client_* metrics on every call and, when tracing is on, one CLIENT
 * span per call, child of the active span, whose W3C `traceparent` (and `tracestate`, baggage) the call
 * carries to the server. Explicit rather than OpenTelemetry's http/http2 auto-instrumentation, which patches
 * Node's modules underneath grpc-js and knows nothing of gRPC methods and codes.
 */
export function observeTransport(inner: GrpcTransport): GrpcTransport {
  const tracer = activeTracer();
  const begin = (method: DescMethod, header: HeadersInit | undefined) => {
    const slot = clientRpcMetrics.slot(method);
    slot.started++;
    const startedAt = performance.now();
    if (!tracer || !isTraced(method.parent.typeName)) return { slot, startedAt, span: undefined, header };
    const rpcMethod = `${method.parent.typeName}/${method.name}`;
    const span = tracer.startSpan(rpcMethod, {
      kind: SpanKind.CLIENT,
      attributes: { "rpc.system.name": "grpc", "rpc.method": rpcMethod },
    });
    return { slot, startedAt, span, header: withTraceContext(header, trace.setSpan(context.active(), span)) };
  };
  const finish = (slot: RpcSlot, startedAt: number, span: Span | undefined, err?: unknown) => {
    const code = grpcCodeOf(err);
    slot.finish(code, startedAt);
    if (span) endSpan(span, code, err, err !== undefined);
  };

  return {
    get address() {
      return inner.address;
    },
    close: () => inner.close(),

    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
    ): Promise<UnaryResponse<I, O>> {
      const call = begin(method, header);
      call.slot.sent++;
      try {
        const res = await inner.unary(method, signal, timeoutMs, call.header, input);
        call.slot.received++;
        finish(call.slot, call.startedAt, call.span);
        return res;
      } catch (err) {
        finish(call.slot, call.startedAt, call.span, err);
        throw err;
      }
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
    ): Promise<StreamResponse<I, O>> {
      const call = begin(method, header);
      if (method.methodKind === "server_streaming") call.slot.sent++;
      // Once: by the stream's end as its reader sees it, or by the caller's abort, which Connect's clients
      // use to leave a stream without reading on (they do not return() the iterator).
      let ended = false;
      const end = (err?: unknown) => {
        if (ended) return;
        ended = true;
        signal?.removeEventListener("abort", onAbort);
        finish(call.slot, call.startedAt, call.span, err);
      };
      const onAbort = () => end(new ConnectError("the call was cancelled", Code.Canceled));
      signal?.addEventListener("abort", onAbort, { once: true });
      let res: StreamResponse<I, O>;
      try {
        res = await inner.stream(method, signal, timeoutMs, call.header, input);
      } catch (err) {
        end(err);
        throw err;
      }
      return { ...res, message: onStreamEnd(countReceived(res.message, call.slot), end) };
    },
  };
}

function countReceived<T>(messages: AsyncIterable<T>, slot: RpcSlot): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = messages[Symbol.asyncIterator]();
      return {
        next: () =>
          it.next().then((result) => {
            if (!result.done) slot.received++;
            return result;
          }),
        return: (value?: unknown) =>
          it.return?.(value) ?? Promise.resolve({ done: true as const, value: value as T }),
      };
    },
  };
}

/** `header` plus the W3C headers of `ctx`, in the same form (a record, a Headers object or pairs). */
function withTraceContext(header: HeadersInit | undefined, ctx: Context): HeadersInit {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  if (header === undefined) return carrier;
  if (header instanceof Headers) {
    const copy = new Headers(header);
    for (const [key, value] of Object.entries(carrier)) copy.set(key, value);
    return copy;
  }
  if (Array.isArray(header)) return [...header, ...Object.entries(carrier)];
  return { ...(header as Record<string, string>), ...carrier };
}
