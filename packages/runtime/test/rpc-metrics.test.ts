import { createClient } from "@connectrpc/connect";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { type ProxyTracerProvider, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createGrpcTransport,
  createLogger,
  InvalidArgumentError,
  type RunningService,
  startGrpcService,
  tracingEnabled,
} from "../src/index.js";

const conditioning = {
  tokenize: (req: { text: string }) => {
    if (req.text === "bad") throw new InvalidArgumentError("text", "is bad");
    return { tokenizers: [] };
  },
};
const inference = {
  async *generate() {
    for (let step = 1; step <= 3; step++)
      yield { event: { case: "progress", value: { step, totalSteps: 3 } } };
  },
};

let service: RunningService;
let transport: ReturnType<typeof createGrpcTransport>;

/** One sample's value from an exposition, by its name and exact label set. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(",");
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? "")
      .split(/,(?=[a-z_]+=")/)
      .filter(Boolean)
      .sort()
      .join(",");
    if (have === wanted) return Number(m[3]);
  }
  return undefined;
}

beforeAll(async () => {
  service = await startGrpcService({
    name: "metrics-test",
    host: "127.0.0.1",
    port: 0,
    logger: createLogger("metrics-test", "silent"),
    registrations: [
      { service: ConditioningService, impl: conditioning },
      { service: InferenceService, impl: inference },
    ],
    maxMessageBytes: 1024 * 1024,
    shutdownGraceMs: 1000,
    metricsPort: 0,
  });
  transport = createGrpcTransport({ address: service.address });
});
afterAll(async () => {
  transport.close();
  await service.close();
});

describe("gRPC metrics", () => {
  it("count calls on both sides under go-grpc-prometheus's names: started, handled by code, messages, latency", async () => {
    const tokenizer = createClient(ConditioningService, transport);
    const generator = createClient(InferenceService, transport);
    await tokenizer.tokenize({ text: "a" });
    await tokenizer.tokenize({ text: "b" });
    await expect(tokenizer.tokenize({ text: "bad" })).rejects.toThrow(/is bad/);
    const events = [];
    for await (const e of generator.generate({})) events.push(e);
    expect(events).toHaveLength(3);
    // A reader that leaves after the first message cancels the call (Connect's clients cancel by the signal).
    const leave = new AbortController();
    for await (const _ of generator.generate({}, { signal: leave.signal })) break;
    leave.abort();

    const res = await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await res.text();
    const tokenize = {
      grpc_type: "unary",
      grpc_service: "dmesh.conditioning.v1.ConditioningService",
      grpc_method: "Tokenize",
    };
    const generate = {
      grpc_type: "server_stream",
      grpc_service: "dmesh.inference.v1.InferenceService",
      grpc_method: "Generate",
    };
    for (const side of ["server", "client"]) {
      expect(sample(text, `grpc_${side}_started_total`, tokenize), side).toBe(3);
      expect(sample(text, `grpc_${side}_handled_total`, { ...tokenize, grpc_code: "OK" }), side).toBe(2);
      expect(
        sample(text, `grpc_${side}_handled_total`, { ...tokenize, grpc_code: "InvalidArgument" }),
        side,
      ).toBe(1);
      expect(sample(text, `grpc_${side}_handling_seconds_count`, tokenize), side).toBe(3);
      expect(sample(text, `grpc_${side}_handling_seconds_bucket`, { ...tokenize, le: "+Inf" }), side).toBe(3);
      expect(sample(text, `grpc_${side}_started_total`, generate), side).toBe(2);
    }
    expect(sample(text, "grpc_server_msg_received_total", tokenize)).toBe(3);
    expect(sample(text, "grpc_server_msg_sent_total", tokenize)).toBe(2);
    expect(sample(text, "grpc_client_msg_received_total", tokenize)).toBe(2);
    // 3 messages of the whole stream, and at least the first of the one left early.
    expect(sample(text, "grpc_client_msg_received_total", generate)).toBeGreaterThanOrEqual(4);
    expect(sample(text, "grpc_client_handled_total", { ...generate, grpc_code: "OK" })).toBe(1);
    expect(sample(text, "grpc_client_handled_total", { ...generate, grpc_code: "Canceled" })).toBe(1);
    // The server may have sent the left stream's three messages before the cancel reached it (then OK), or not.
    const server = await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`).then((r) => r.text());
    const handled = ["OK", "Canceled"].reduce(
      (n, code) => n + (sample(server, "grpc_server_handled_total", { ...generate, grpc_code: code }) ?? 0),
      0,
    );
    expect(handled).toBe(2);
    expect(sample(server, "grpc_server_msg_sent_total", generate)).toBeGreaterThanOrEqual(4);
    expect(sample(text, "process_resident_memory_bytes", {})).toBeGreaterThan(0);
  });

  it("answers only /metrics on the metrics port", async () => {
    const res = await fetch(`http://127.0.0.1:${service.metricsPort}/other`);
    expect(res.status).toBe(404);
  });

  it("leaves tracing off, the API a no-op, when no OTLP endpoint is set", () => {
    expect(tracingEnabled()).toBe(false);
    const provider = trace.getTracerProvider() as ProxyTracerProvider;
    expect(provider.getDelegate().constructor.name).toBe("NoopTracerProvider");
    expect(trace.getTracer("x").startSpan("y").isRecording()).toBe(false);
  });
});
