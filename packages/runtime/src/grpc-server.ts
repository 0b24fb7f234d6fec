import type { DescMessage, DescMethod, DescService, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext, Interceptor, StreamResponse, UnaryResponse } from "@connectrpc/connect";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { toConnectError } from "./errors.js";
import { headersToMetadata, metadataToHeaders } from "./metadata.js";

/**
 * A service and its Connect-style implementation (`ServiceImpl<typeof X>`, checked where it is declared):
 * the same object can be served by connect-node or grpc-js.
 */
export interface ServiceRegistration {
  service: DescService;
  impl: object;
}

export interface GrpcServerOptions {
  registrations: ServiceRegistration[];
  interceptors: Interceptor[];
  /** Largest message accepted or sent, in bytes. */
  maxMessageBytes: number;
  /** Aborted when the server shuts down, so long streams stop and the server can drain. */
  shutdownSignal: AbortSignal;
}

/**
 * Serves Connect-style implementations over @grpc/grpc-js. grpc-js is the internal transport because it
 * measured about 2.8x faster per unary hop than connect-node here; Connect interceptors and handler
 * contexts are kept so that domain services are written once, in the Connect style.
 */
export function createGrpcServer(options: GrpcServerOptions): grpc.Server {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
  });
  const calls = new LiveCalls(options.shutdownSignal);
  for (const { service, impl } of options.registrations) {
    for (const method of service.methods) {
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (typeof fn !== "function") continue;
      const path = `/${service.typeName}/${method.name}`;
      const handler = createMethodHandler(service, method, fn.bind(impl), options.interceptors, calls);
      const serialize = (msg: unknown) => {
        const bytes = toBinary(method.output, toMessage(method.output, msg));
        // A view, not a copy: grpc-js copies the bytes into its own frame.
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      };
      const deserialize = (bytes: Buffer) => fromBinary(method.input, bytes);
      server.register(path, handler, serialize, deserialize, handlerType(method));
    }
  }
  return server;
}

function handlerType(method: DescMethod): string {
  switch (method.methodKind) {
    case "unary":
      return "unary";
    case "server_streaming":
      return "serverStream";
    case "client_streaming":
      return "clientStream";
    case "bidi_streaming":
      return "bidi";
  }
}

function toMessage<T extends DescMessage>(schema: T, value: unknown): MessageShape<T> {
  return isMessage(value, schema) ? value : create(schema, value as never);
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> & Partial<grpc.ServerDuplexStream<unknown, unknown>>;

// Reason a call's signal carries once the call has ended normally, so that work still tied to it stops.
const CALL_ENDED = new ConnectError("the call has ended", Code.Canceled);

/**
 * One call's HandlerContext. Its AbortSignal is made on first use: most unary handlers never look at theirs,
 * and making and aborting AbortSignals (three per call through `createHandlerContext`) measured about a
 * tenth of a loopback hop. A class, so that the lazy getter lives on the prototype: an object literal with a
 * getter measured as the costliest line of a call's setup.
 */
class GrpcHandlerContext implements HandlerContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly responseHeader = new Headers();
  readonly responseTrailer = new Headers();
  readonly values = createContextValues();
  readonly timeoutMs: () => number | undefined;
  aborted = false;
  private controller: AbortController | undefined;
  private reason: unknown;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly url: string,
    readonly requestHeader: Headers,
    deadlineMs: number | undefined,
  ) {
    this.timeoutMs = deadlineMs === undefined ? () => undefined : () => deadlineMs - Date.now();
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * What interceptors get (Connect's UnaryRequest or StreamRequest). `signal` is the context's, read through a
 * getter so that it stays lazy; an interceptor that copies the request must carry it over itself.
 */
class GrpcInterceptorRequest {
  readonly requestMethod = "POST";
  readonly header: Headers;
  readonly contextValues: HandlerContext["values"];

  constructor(
    readonly stream: boolean,
    readonly service: DescService,
    readonly method: DescMethod,
    readonly url: string,
    readonly message: unknown,
    private readonly ctx: GrpcHandlerContext,
  ) {
    this.header = ctx.requestHeader;
    this.contextValues = ctx.values;
  }

  get signal(): AbortSignal {
    return this.ctx.signal;
  }
}

/**
 * The calls in progress, so that the server's shutdown aborts them all through one listener: one per call
 * on the shutdown signal would cost each call an add and a remove, and trip Node's leak warning past ten.
 */
class LiveCalls {
  private readonly live = new Set<GrpcHandlerContext>();

  constructor(private readonly shutdownSignal: AbortSignal) {
    shutdownSignal.addEventListener("abort", () => {
      for (const call of this.live) call.abort(shutdownSignal.reason);
    });
  }

  /** Tracks `call` until `delete`; aborts it at once if the server is already shut down. */
  add(call: GrpcHandlerContext): void {
    if (this.shutdownSignal.aborted) call.abort(this.shutdownSignal.reason);
    this.live.add(call);
  }

  delete(call: GrpcHandlerContext): void {
    this.live.delete(call);
  }
}

function createMethodHandler(
  service: DescService,
  method: DescMethod,
  // biome-ignore lint/suspicious/noExplicitAny: see AnyServiceImpl
  impl: (...args: any[]) => any,
  interceptors: Interceptor[],
  calls: LiveCalls,
): grpc.UntypedHandleCall {
  const url = `/${service.typeName}/${method.name}`;
  const streamingInput = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";

  const start = (call: AnyCall) => {
    const deadline = Number(call.getDeadline());
    const deadlineMs = Number.isFinite(deadline) ? deadline : undefined;
    const ctx = new GrpcHandlerContext(service, method, url, metadataToHeaders(call.metadata), deadlineMs);
    // Client cancel, deadline and server shutdown abort the call's signal; so does its end. grpc-js enforces
    // the deadline itself and then reports "cancelled", as it does when any call's stream closes, finished
    // ones included: make no error then.
    call.on("cancelled", () => {
      if (ctx.aborted) return;
      ctx.abort(
        deadlineMs !== undefined && Date.now() >= deadlineMs
          ? new ConnectError("the operation timed out", Code.DeadlineExceeded)
          : new Error("client cancelled"),
      );
    });
    calls.add(ctx);
    const end = () => {
      calls.delete(ctx);
      ctx.abort(CALL_ENDED);
    };
    // Node destroys a stream when its async iterator finishes, which would kill the duplex's sending half.
    const input = streamingInput
      ? (call as unknown as import("node:stream").Readable).iterator({ destroyOnReturn: false })
      : call.request;
    // The innermost step calls the implementation; interceptors wrap it like an onion.
    // biome-ignore lint/suspicious/noExplicitAny: interceptor requests are typed per method at runtime
    const innermost = async (req: any): Promise<UnaryResponse | StreamResponse> => {
      const { responseHeader: header, responseTrailer: trailer } = ctx;
      if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
        const message = toMessage(method.output, await impl(req.message, ctx));
        return { stream: false, service, method, header, trailer, message } as UnaryResponse;
      }
      return {
        stream: true,
        service,
        method,
        header,
        trailer,
        message: impl(req.message, ctx),
      } as StreamResponse;
    };
    const run = interceptors.reduceRight((next, interceptor) => interceptor(next), innermost);
    const stream = method.methodKind !== "unary";
    // biome-ignore lint/suspicious/noExplicitAny: see innermost
    const req = new GrpcInterceptorRequest(stream, service, method, url, input, ctx) as any;
    return { ctx, response: run(req), end };
  };

  if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
    return ((call: AnyCall, callback: grpc.sendUnaryData<unknown>) => {
      const { ctx, response, end } = start(call);
      response.then(
        (res) => {
          call.sendMetadata(headersToMetadata(res.header));
          callback(null, res.message, headersToMetadata(res.trailer));
          end();
        },
        (err) => {
          callback(toServiceError(err, ctx));
          end();
        },
      );
    }) as grpc.UntypedHandleCall;
  }

  return (async (call: grpc.ServerWritableStream<unknown, unknown>) => {
    const { ctx, response, end } = start(call as unknown as AnyCall);
    try {
      const res = (await response) as StreamResponse;
      let headerSent = false;
      for await (const msg of res.message) {
        if (call.cancelled) break;
        if (!headerSent) {
          call.sendMetadata(headersToMetadata(res.header));
          headerSent = true;
        }
        if (!call.write(msg)) await drainedOrCancelled(call);
      }
      if (!call.cancelled) call.end(headersToMetadata(res.trailer));
    } catch (err) {
      if (!call.cancelled) call.emit("error", toServiceError(err, ctx));
    } finally {
      end();
    }
  }) as grpc.UntypedHandleCall;
}

/** Waits until the stream takes more messages or is cancelled, and leaves no listener behind. */
function drainedOrCancelled(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("cancelled", done);
      resolve();
    };
    call.on("drain", done);
    call.on("cancelled", done);
  });
}

function toServiceError(err: unknown, ctx: HandlerContext): Partial<grpc.StatusObject> {
  const ce = toConnectError(err, ctx.signal);
  return { code: ce.code as number, details: ce.rawMessage, metadata: headersToMetadata(ce.metadata) };
}
