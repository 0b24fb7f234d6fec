/**
 * The observability suite's echo server: `bare` (no gRPC metrics, no tracing), `metrics` (grpc_server_*
 * recorded and served on the given METRICS_PORT) or `traced` (metrics, and a span per call exported over
 * OTLP/HTTP to the given collector). Reports its gRPC port over IPC once listening.
 */
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { createLogger, startGrpcService, startTracing } from "@dmesh/runtime";
import { tokenizeResponse } from "../transport/echo-messages.js";

const [mode, metricsPort = "-1", collector = ""] = process.argv.slice(2);
if (mode === "traced") await startTracing({ service: "bench-echo", otlpEndpoint: collector });
const service = await startGrpcService({
  name: "bench-echo",
  host: "127.0.0.1",
  port: 0,
  logger: createLogger("bench-echo", "info"),
  maxMessageBytes: 64 * 1024 * 1024,
  shutdownGraceMs: 1000,
  registrations: [{ service: ConditioningService, impl: { tokenize: () => tokenizeResponse } }],
  metricsPort: mode === "bare" ? -1 : Number(metricsPort),
});
process.once("disconnect", () => process.exit(0));
process.send?.({ port: service.port });
