import type { HandlerContext } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckRequest,
  HealthCheckResponse_ServingStatus as Status,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcServer, createGrpcTransport, createServerInterceptor, type Logger } from "../src/index.js";

/** Records every line with the bindings of the child logger it was written through. */
function recordingLogger(lines: Record<string, unknown>[], bindings: Record<string, unknown> = {}): Logger {
  const write = (level: string) => (obj: object, msg?: string) =>
    lines.push({ level, msg, ...bindings, ...obj });
  return {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}

// Health's two methods stand in for any unary and server-streaming method: each echoes a request header
// into a trailer, the way a handler would report something about the call.
const impl = {
  check(_req: HealthCheckRequest, ctx: HandlerContext) {
    ctx.responseTrailer.set("x-tenant-seen", ctx.requestHeader.get("x-tenant") ?? "none");
    return { status: Status.SERVING };
  },
  async *watch(req: HealthCheckRequest, ctx: HandlerContext) {
    ctx.responseTrailer.set("x-tenant-seen", ctx.requestHeader.get("x-tenant") ?? "none");
    if (req.service === "empty") return;
    yield { status: Status.SERVING };
    yield { status: Status.NOT_SERVING };
  },
};

describe("headers and trailers across a hop (grpc-js server adapter and transport)", () => {
  const lines: Record<string, unknown>[] = [];
  const shutdown = new AbortController();
  let server: grpc.Server;
  let transport: ReturnType<typeof createGrpcTransport>;

  beforeAll(async () => {
    server = createGrpcServer({
      registrations: [{ service: Health, impl }],
      interceptors: [createServerInterceptor(recordingLogger(lines))],
      maxMessageBytes: 1024 * 1024,
      shutdownSignal: shutdown.signal,
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    transport = createGrpcTransport({ address: `127.0.0.1:${port}` });
  });
  afterAll(async () => {
    transport.close();
    shutdown.abort();
    server.forceShutdown();
  });

  it("unary: the request id comes back in the header, what the handler set in the trailer", async () => {
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const res = await createClient(Health, transport).check(
      {},
      {
        headers: { "x-request-id": "req-unary-1", "x-tenant": "acme" },
        timeoutMs: 5000,
        onHeader: (h) => {
          header = h;
        },
        onTrailer: (t) => {
          trailer = t;
        },
      },
    );
    expect(res.status).toBe(Status.SERVING);
    expect(header?.get("x-request-id")).toBe("req-unary-1");
    expect(trailer?.get("x-tenant-seen")).toBe("acme");
    expect(lines).toContainEqual(
      expect.objectContaining({ requestId: "req-unary-1", code: "ok", msg: "rpc" }),
    );
  });

  it("server stream: the same, and the access line is written when the stream ends", async () => {
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const seen: Status[] = [];
    const stream = createClient(Health, transport).watch(
      {},
      {
        headers: { "x-request-id": "req-stream-1", "x-tenant": "globex" },
        onHeader: (h) => {
          header = h;
        },
        onTrailer: (t) => {
          trailer = t;
        },
      },
    );
    for await (const res of stream) seen.push(res.status);
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
    expect(header?.get("x-request-id")).toBe("req-stream-1");
    expect(trailer?.get("x-tenant-seen")).toBe("globex");
    expect(lines).toContainEqual(expect.objectContaining({ requestId: "req-stream-1", code: "ok" }));
  });

  it("server stream without messages: still answers with the request id in its header", async () => {
    let header: Headers | undefined;
    const stream = createClient(Health, transport).watch(
      { service: "empty" },
      {
        headers: { "x-request-id": "req-empty-1" },
        onHeader: (h) => {
          header = h;
        },
      },
    );
    let count = 0;
    for await (const _ of stream) count++;
    expect(count).toBe(0);
    expect(header?.get("x-request-id")).toBe("req-empty-1");
  });

  it("gives a call without a request id one of its own, and says which in the header", async () => {
    let header: Headers | undefined;
    await createClient(Health, transport).check(
      {},
      {
        onHeader: (h) => {
          header = h;
        },
      },
    );
    const id = header?.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines).toContainEqual(expect.objectContaining({ requestId: id }));
    expect(lines.find((l) => l.requestId === id)?.rpc).toBe("grpc.health.v1.Health/Check");
  });
});
