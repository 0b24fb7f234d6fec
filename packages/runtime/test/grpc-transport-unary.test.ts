import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcTransport } from "../src/index.js";

const CHECK = "/grpc.health.v1.Health/Check";

/**
 * A bare grpc-js server whose Check misbehaves as the request's service name says, so that every way a
 * unary call can end reaches our transport's own unary path (it drives grpc-js's channel directly).
 */
function misbehavingServer(): grpc.Server {
  const server = new grpc.Server();
  const ok = Buffer.from(
    toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: Status.SERVING })),
  );
  server.register(
    CHECK,
    (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      // The request is a HealthCheckRequest: field 1 (service), a string; read it without a schema.
      const service = call.request.subarray(2).toString();
      const trailer = new grpc.Metadata();
      trailer.set("x-seen", service || "none");
      switch (service) {
        case "garbage":
          return callback(null, Buffer.from([0xff, 0xff, 0xff]));
        case "huge":
          return callback(null, Buffer.alloc(2 * 1024 * 1024, 1));
        case "slow":
          return setTimeout(() => callback(null, ok), 2000);
        case "missing":
          return callback({
            code: grpc.status.NOT_FOUND,
            details: "no service, named here",
            metadata: trailer,
          });
        default:
          call.sendMetadata(new grpc.Metadata());
          return callback(null, ok, trailer);
      }
    },
    (bytes: Buffer) => bytes,
    (bytes: Buffer) => bytes,
    "unary",
  );
  return server;
}

describe("our transport's unary calls against a bare grpc-js server", () => {
  const server = misbehavingServer();
  let transport: ReturnType<typeof createGrpcTransport>;
  let health: ReturnType<typeof createClient<typeof Health>>;

  beforeAll(async () => {
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    transport = createGrpcTransport({ address: `127.0.0.1:${port}`, maxMessageBytes: 1024 * 1024 });
    health = createClient(Health, transport);
  });
  afterAll(() => {
    transport.close();
    server.forceShutdown();
  });

  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => expect.unreachable("the call should have failed"),
      (err: unknown) => ConnectError.from(err),
    );

  it("returns the message and hands over the trailer", async () => {
    let seen: string | null = null;
    const res = await health.check({ service: "ok" }, { onTrailer: (t) => (seen = t.get("x-seen")) });
    expect(res.status).toBe(Status.SERVING);
    expect(seen).toBe("ok");
  });

  it("maps a status to its code, message and metadata", async () => {
    const err = await failure(health.check({ service: "missing" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("no service, named here");
    expect(err.metadata.get("x-seen")).toBe("missing");
  });

  it("fails with INTERNAL on a response that does not parse", async () => {
    const err = await failure(health.check({ service: "garbage" }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/response message parsing error/);
  });

  it("refuses a response over its message limit with RESOURCE_EXHAUSTED", async () => {
    expect((await failure(health.check({ service: "huge" }))).code).toBe(Code.ResourceExhausted);
  });

  it("refuses a header grpc-js cannot send, and the next call goes through", async () => {
    await expect(health.check({ service: "ok" }, { headers: { "bad header": "x" } })).rejects.toThrow(
      /not a valid|legal/i,
    );
    expect((await health.check({ service: "ok" })).status).toBe(Status.SERVING);
  });

  it("keeps a failed status's message and code in the error's cause, for the logs", async () => {
    const err = await failure(health.check({ service: "missing" }));
    expect(err.cause).toBeInstanceOf(Error);
    expect((err.cause as Error).message).toBe("no service, named here");
  });

  it("ends with DEADLINE_EXCEEDED at the deadline and CANCELED when aborted", async () => {
    const started = performance.now();
    expect((await failure(health.check({ service: "slow" }, { timeoutMs: 100 }))).code).toBe(
      Code.DeadlineExceeded,
    );
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    expect((await failure(health.check({ service: "slow" }, { signal: abort.signal }))).code).toBe(
      Code.Canceled,
    );
    // Both ended well before the server's 2 s answer.
    expect(performance.now() - started).toBeLessThan(1500);
  });
});
