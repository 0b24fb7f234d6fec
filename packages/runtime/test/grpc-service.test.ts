import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { ServerReflection } from "@dmesh/contracts/grpc/reflection/v1/reflection_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createGrpcTransport,
  createLogger,
  LIVENESS,
  type RunningService,
  startGrpcService,
} from "../src/index.js";

describe("a gRPC service started by the runtime", () => {
  let service: RunningService;
  let transport: ReturnType<typeof createGrpcTransport>;

  beforeAll(async () => {
    service = await startGrpcService({
      name: "test",
      host: "127.0.0.1",
      port: 0,
      logger: createLogger("test", "silent"),
      registrations: [],
      maxMessageBytes: 1024 * 1024,
      shutdownGraceMs: 1000,
    });
    transport = createGrpcTransport({ address: service.address });
  });
  afterAll(async () => {
    transport.close();
    await service.close();
  });

  it("reports liveness at once and readiness only when told", async () => {
    const health = createClient(Health, transport);
    expect((await health.check({ service: LIVENESS })).status).toBe(Status.SERVING);
    expect((await health.check({ service: "" })).status).toBe(Status.NOT_SERVING);
    service.health.setReady(true);
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
  });

  it("maps a domain error to NOT_FOUND with the field in the trailer", async () => {
    const health = createClient(Health, transport);
    const err = await health.check({ service: "nope" }).catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain('unknown service "nope"');
    expect(err.metadata.get("dmesh-field")).toBe("service");
  });

  it("streams health changes to a watcher", async () => {
    const health = createClient(Health, transport);
    const abort = new AbortController();
    const seen: Status[] = [];
    service.health.setReady(false);
    const watching = (async () => {
      for await (const res of health.watch({ service: "" }, { signal: abort.signal })) {
        seen.push(res.status);
        if (seen.length === 1) service.health.setReady(true);
        if (seen.length === 2) abort.abort();
      }
    })().catch((e) => e);
    await watching;
    expect(seen).toEqual([Status.NOT_SERVING, Status.SERVING]);
  });

  it("lists its services by reflection (bidi stream)", async () => {
    const reflection = createClient(ServerReflection, transport);
    async function* requests() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
      yield {
        messageRequest: { case: "fileContainingSymbol" as const, value: "grpc.health.v1.Health.Check" },
      };
    }
    const answers = [];
    for await (const res of reflection.serverReflectionInfo(requests())) answers.push(res.messageResponse);
    expect(answers[0]?.case).toBe("listServicesResponse");
    const names =
      answers[0]?.case === "listServicesResponse" ? answers[0].value.service.map((s) => s.name) : [];
    expect(names).toEqual(["grpc.health.v1.Health"]);
    expect(answers[1]?.case).toBe("fileDescriptorResponse");
  });

  it("honours a deadline on the client side", async () => {
    const health = createClient(Health, transport);
    const err = await (async () => {
      for await (const _ of health.watch({ service: "" }, { timeoutMs: 200 })) {
        // keep watching until the deadline cuts the stream
      }
    })().catch((e) => e);
    expect(err.code).toBe(Code.DeadlineExceeded);
  });
});
