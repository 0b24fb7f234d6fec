import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createGrpcTransport,
  createHealthService,
  createLogger,
  createServerInterceptor,
  HealthRegistry,
  LIVENESS,
  type RunningConnectServer,
  startConnectServer,
} from "../src/index.js";

describe("the Connect server's one port", () => {
  let server: RunningConnectServer;
  beforeAll(async () => {
    const logger = createLogger("test", "silent");
    server = await startConnectServer({
      name: "test",
      host: "127.0.0.1",
      port: 0,
      logger,
      routes: (router) => router.service(Health, createHealthService(new HealthRegistry([]))),
      interceptors: [createServerInterceptor(logger)],
      maxMessageBytes: 1024 * 1024,
      shutdownGraceMs: 500,
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it("answers gRPC over h2c, Connect over HTTP/1.1 and Connect over HTTP/2", async () => {
    const grpc = createGrpcTransport({ address: server.address });
    const transports = [
      grpc,
      createConnectTransport({ baseUrl: `http://${server.address}`, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl: `http://${server.address}`, httpVersion: "2" }),
    ];
    for (const transport of transports) {
      expect((await createClient(Health, transport).check({ service: LIVENESS })).status).toBe(
        Status.SERVING,
      );
    }
    grpc.close();
  });

  it("delivers error messages with reserved characters intact to a grpc-js client", async () => {
    const grpc = createGrpcTransport({ address: server.address });
    const err = ConnectError.from(
      await createClient(Health, grpc)
        .check({ service: "a,b: c/d?" })
        .catch((e: unknown) => e),
    );
    grpc.close();
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe('service: unknown service "a,b: c/d?"');
  });
});
