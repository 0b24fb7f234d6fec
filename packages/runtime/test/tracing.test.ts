import { type Client, createClient, type HandlerContext } from "@connectrpc/connect";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { Health } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { context, SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  callOptions,
  createGrpcTransport,
  createLogger,
  flushTracing,
  InvalidArgumentError,
  inSpan,
  type RunningService,
  scopeFrom,
  startGrpcService,
  startTracing,
  stopTracing,
  traceLogFields,
  tracingEnabled,
} from "../src/index.js";

const exporter = new InMemorySpanExporter();
const logger = createLogger("tracing-test", "silent");
const seenInBack: { trace_id?: string; span_id?: string }[] = [];

let back: RunningService;
let front: RunningService;
let backTransport: ReturnType<typeof createGrpcTransport>;
let frontTransport: ReturnType<typeof createGrpcTransport>;
let backClient: Client<typeof ConditioningService>;

beforeAll(async () => {
  // Before any server or client is made, as main.ts does.
  await startTracing({ service: "tracing-test", otlpEndpoint: "", exporter });
  back = await startGrpcService({
    name: "back",
    host: "127.0.0.1",
    port: 0,
    logger,
    registrations: [
      {
        service: ConditioningService,
        impl: {
          tokenize: async (req: { text: string }) => {
            if (req.text === "bad") throw new InvalidArgumentError("text", "is bad");
            // Work inside the handler sees its span, as a log line would.
            seenInBack.push(traceLogFields());
            await inSpan("back work", { "test.step": 1 }, async () => {});
            return { tokenizers: [] };
          },
        },
      },
    ],
    maxMessageBytes: 1 << 20,
    shutdownGraceMs: 500,
  });
  backTransport = createGrpcTransport({ address: back.address });
  backClient = createClient(ConditioningService, backTransport);
  // A streaming front that calls back for each message: the hop happens while the stream is being pulled.
  front = await startGrpcService({
    name: "front",
    host: "127.0.0.1",
    port: 0,
    logger,
    registrations: [
      {
        service: InferenceService,
        impl: {
          async *generate(_req: unknown, ctx: HandlerContext) {
            const scope = scopeFrom(ctx, logger);
            for (let step = 1; step <= 2; step++) {
              await backClient.tokenize({ text: "x" }, callOptions(scope));
              yield { event: { case: "progress", value: { step, totalSteps: 2 } } };
            }
          },
        },
      },
    ],
    maxMessageBytes: 1 << 20,
    shutdownGraceMs: 500,
  });
  frontTransport = createGrpcTransport({ address: front.address });
});
afterAll(async () => {
  backTransport.close();
  frontTransport.close();
  await front.close();
  await back.close();
  await stopTracing();
});

describe("tracing across grpc-js hops", () => {
  it("puts the caller, each server and each downstream call in one trace, parent by parent", async () => {
    expect(tracingEnabled()).toBe(true);
    const tracer = trace.getTracer("test");
    const root = tracer.startSpan("caller");
    await context.with(trace.setSpan(context.active(), root), async () => {
      const generator = createClient(InferenceService, frontTransport);
      for await (const _ of generator.generate({})) {
        // drain
      }
    });
    root.end();
    await flushTracing();
    const spans = exporter.getFinishedSpans();
    const traceId = root.spanContext().traceId;
    const ours = spans.filter((s) => s.spanContext().traceId === traceId);
    const named = (name: string, kind: SpanKind) => ours.filter((s) => s.name === name && s.kind === kind);
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

    const [frontClient] = named("dmesh.inference.v1.InferenceService/Generate", SpanKind.CLIENT);
    const [frontServer] = named("dmesh.inference.v1.InferenceService/Generate", SpanKind.SERVER);
    expect(parentOf(frontClient as ReadableSpan)).toBe(root.spanContext().spanId);
    expect(parentOf(frontServer as ReadableSpan)).toBe(frontClient?.spanContext().spanId);
    expect(frontServer?.attributes["rpc.system.name"]).toBe("grpc");
    expect(frontServer?.attributes["rpc.status_code"]).toBe("OK");

    // Both downstream calls, made while the stream was pulled message by message, are the server span's.
    const backClients = named("dmesh.conditioning.v1.ConditioningService/Tokenize", SpanKind.CLIENT);
    const backServers = named("dmesh.conditioning.v1.ConditioningService/Tokenize", SpanKind.SERVER);
    expect(backClients).toHaveLength(2);
    expect(backServers).toHaveLength(2);
    for (const c of backClients) expect(parentOf(c)).toBe(frontServer?.spanContext().spanId);
    const clientIds = backClients.map((c) => c.spanContext().spanId).sort();
    expect(backServers.map(parentOf).sort()).toEqual(clientIds);

    const works = named("back work", SpanKind.INTERNAL);
    expect(works.map(parentOf).sort()).toEqual(backServers.map((s) => s.spanContext().spanId).sort());
    expect(seenInBack.map((f) => f.trace_id)).toEqual([traceId, traceId]);
  });

  it("records a failed call's code on both spans, an error on the server's only when the fault is its own", async () => {
    exporter.reset();
    await expect(backClient.tokenize({ text: "bad" })).rejects.toThrow(/is bad/);
    await flushTracing();
    const spans = exporter.getFinishedSpans().filter((s) => s.name.endsWith("/Tokenize"));
    const server = spans.find((s) => s.kind === SpanKind.SERVER);
    const client = spans.find((s) => s.kind === SpanKind.CLIENT);
    expect(server?.attributes["rpc.status_code"]).toBe("INVALID_ARGUMENT");
    expect(client?.attributes["rpc.status_code"]).toBe("INVALID_ARGUMENT");
    // OpenTelemetry's gRPC conventions: INVALID_ARGUMENT is the caller's fault, so the server span is not an
    // error; every non-OK code is one for the client.
    expect(server?.status.code).toBe(0);
    expect(client?.status.code).toBe(2);
  });

  it("makes no spans for health checks, which only their metrics count", async () => {
    exporter.reset();
    await createClient(Health, backTransport).check({ service: "" });
    await backClient.tokenize({ text: "x" });
    await flushTracing();
    expect(
      exporter
        .getFinishedSpans()
        .map((s) => s.name)
        .sort(),
    ).toEqual([
      "back work",
      "dmesh.conditioning.v1.ConditioningService/Tokenize",
      "dmesh.conditioning.v1.ConditioningService/Tokenize",
    ]);
  });
});
