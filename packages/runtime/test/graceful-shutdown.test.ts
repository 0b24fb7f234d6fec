import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { describe, expect, it } from "vitest";
import { createGrpcTransport, createLogger, startGrpcService } from "../src/index.js";

describe("graceful shutdown", () => {
  it("drops readiness first, lets open streams see it, then cuts them after the grace period", async () => {
    const service = await startGrpcService({
      name: "drain",
      host: "127.0.0.1",
      port: 0,
      logger: createLogger("drain", "silent"),
      registrations: [],
      maxMessageBytes: 1024 * 1024,
      shutdownGraceMs: 300,
    });
    service.health.setReady(true);
    const transport = createGrpcTransport({ address: service.address });
    const seen: Status[] = [];
    const watching = (async () => {
      for await (const res of createClient(Health, transport).watch({ service: "" })) {
        seen.push(res.status);
        if (seen.length === 1) void service.close();
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    const started = performance.now();
    const ended = await watching;
    const elapsed = performance.now() - started;
    transport.close();
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
    // The watch never ends by itself: the server ended it once the grace period was over.
    expect(elapsed).toBeGreaterThanOrEqual(250);
    if (ended !== undefined)
      expect([Code.Canceled, Code.Unavailable]).toContain(ConnectError.from(ended).code);
  });
});
