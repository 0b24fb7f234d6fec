import type { HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckRequest,
  HealthCheckResponse_ServingStatus as Status,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { createGrpcServer, createGrpcTransport } from "../src/index.js";

/**
 * A handler's signal is made only when the handler reads it (grpc-server.ts): whenever that is, it must
 * still be aborted by the client's cancel, the deadline, the server's shutdown and the call's end.
 */
describe("a handler's abort signal over grpc-js", () => {
  const reasons: unknown[] = [];
  let server: grpc.Server | undefined;
  let transport: ReturnType<typeof createGrpcTransport> | undefined;
  let shutdown = new AbortController();
  let unarySignal: AbortSignal | undefined;

  const aborted = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });

  // Watch sends one message, then waits for its signal (read only after that message went out).
  const impl = {
    check(_req: HealthCheckRequest, ctx: HandlerContext) {
      unarySignal = ctx.signal;
      return { status: Status.SERVING };
    },
    async *watch(_req: HealthCheckRequest, ctx: HandlerContext) {
      yield { status: Status.SERVING };
      await aborted(ctx.signal);
      reasons.push(ctx.signal.reason);
    },
  };

  async function start(): Promise<ReturnType<typeof createClient<typeof Health>>> {
    shutdown = new AbortController();
    reasons.length = 0;
    server = createGrpcServer({
      registrations: [{ service: Health, impl }],
      interceptors: [],
      maxMessageBytes: 1024 * 1024,
      shutdownSignal: shutdown.signal,
    });
    const port = await new Promise<number>((resolve, reject) =>
      server?.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    transport = createGrpcTransport({ address: `127.0.0.1:${port}` });
    return createClient(Health, transport);
  }

  /** Polls until the handler has recorded a reason, for at most ten seconds. */
  async function reason(): Promise<unknown> {
    for (let i = 0; i < 1000 && reasons.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(reasons).toHaveLength(1);
    return reasons[0];
  }

  afterEach(() => {
    transport?.close();
    server?.forceShutdown();
  });

  it("is aborted when the client cancels", async () => {
    const health = await start();
    const abort = new AbortController();
    const reading = (async () => {
      for await (const _ of health.watch({ service: "" }, { signal: abort.signal })) abort.abort();
    })().catch((e: unknown) => e);
    expect(ConnectError.from(await reading).code).toBe(Code.Canceled);
    expect(String(await reason())).toContain("client cancelled");
  });

  it("is aborted with DEADLINE_EXCEEDED when the deadline passes", async () => {
    const health = await start();
    // A connected channel first: on a loaded machine the deadline could otherwise pass before the call
    // reaches the handler, and there would be no handler signal to observe.
    await health.check({ service: "" });
    const err = await (async () => {
      for await (const _ of health.watch({ service: "" }, { timeoutMs: 500 })) {
        // the deadline ends it
      }
    })().catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.DeadlineExceeded);
    expect(ConnectError.from(await reason()).code).toBe(Code.DeadlineExceeded);
  });

  it("is aborted with the shutdown's reason when the server shuts down", async () => {
    const health = await start();
    const stream = health.watch({ service: "" })[Symbol.asyncIterator]();
    expect((await stream.next()).value?.status).toBe(Status.SERVING);
    shutdown.abort(new Error("server shutting down"));
    expect(String(await reason())).toContain("server shutting down");
    await stream.return?.();
  });

  it("is aborted once a unary call has ended, and is already aborted when read during shutdown", async () => {
    const health = await start();
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
    expect(unarySignal?.aborted).toBe(true);
    expect(ConnectError.from(unarySignal?.reason).code).toBe(Code.Canceled);

    shutdown.abort(new Error("server shutting down"));
    const err = await (async () => {
      for await (const _ of health.watch({ service: "" }, { timeoutMs: 2000 })) {
        // the handler finds its signal aborted at once and ends the stream
      }
    })().catch((e: unknown) => e);
    expect(err).toBeUndefined();
    expect(String(await reason())).toContain("server shutting down");
  });
});
