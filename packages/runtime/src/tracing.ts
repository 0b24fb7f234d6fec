import {
  type Attributes,
  type Context,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { SpanExporter } from "@opentelemetry/sdk-trace-base";

/** What `startTracing` needs: the OTLP/HTTP collector's base URL (traces go to `<url>/v1/traces`). */
export interface TracingOptions {
  readonly service: string;
  /** Empty = tracing off. */
  readonly otlpEndpoint: string;
  /** Spans go here instead of OTLP (tests). */
  readonly exporter?: SpanExporter;
}

interface Provider {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

let provider: Provider | undefined;
let tracer: Tracer | undefined;

/**
 * Starts the OpenTelemetry SDK for this process when an OTLP endpoint is configured: W3C trace context and
 * baggage propagation, context kept across awaits (AsyncLocalStorage), spans batched to the collector over
 * OTLP/HTTP (JSON). Without one nothing is loaded or started: the API stays the no-op it ships as, and the
 * interceptors add no span work to a call. Call it before servers, clients and loggers are made.
 */
export async function startTracing(options: TracingOptions): Promise<void> {
  if (provider || (!options.otlpEndpoint && !options.exporter)) return;
  const [{ NodeTracerProvider }, { BatchSpanProcessor }, { resourceFromAttributes }, { ATTR_SERVICE_NAME }] =
    await Promise.all([
      import("@opentelemetry/sdk-trace-node"),
      import("@opentelemetry/sdk-trace-base"),
      import("@opentelemetry/resources"),
      import("@opentelemetry/semantic-conventions"),
    ]);
  let exporter = options.exporter;
  if (!exporter) {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
    exporter = new OTLPTraceExporter({ url: `${options.otlpEndpoint.replace(/\/+$/, "")}/v1/traces` });
  }
  const sdk = new NodeTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: process.env.OTEL_SERVICE_NAME || options.service,
    }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  sdk.register();
  provider = sdk;
  tracer = trace.getTracer("dmesh");
}

/** Sends the spans batched so far. */
export async function flushTracing(): Promise<void> {
  await provider?.forceFlush();
}

/** Sends the spans still batched and stops the SDK (on shutdown, before the process exits). */
export async function stopTracing(): Promise<void> {
  const running = provider;
  if (!running) return;
  provider = undefined;
  tracer = undefined;
  await running.forceFlush().catch(() => {});
  await running.shutdown().catch(() => {});
}

/**
 * Services whose calls get no spans: health checks (kubelet probes, the orchestrator's checks of every replica
 * every few seconds) and reflection would fill the trace store with traces of their own and nothing else.
 * Their metrics are kept.
 */
const UNTRACED = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

export function isTraced(serviceTypeName: string): boolean {
  return !UNTRACED.has(serviceTypeName);
}

/** The tracer, when tracing is on; undefined otherwise, so that callers skip span work entirely. */
export function activeTracer(): Tracer | undefined {
  return tracer;
}

export function tracingEnabled(): boolean {
  return tracer !== undefined;
}

/** The active span's ids as log fields (pino's mixin), so that a line leads to its trace. */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** A captured trace context (the active one where a call was accepted), to run later work under it. */
export type TraceContext = Context;

/** The active trace context, to hand to work that runs later (a queued session); undefined without tracing. */
export function currentTraceContext(): TraceContext | undefined {
  return tracer ? context.active() : undefined;
}

/**
 * Runs `work` in a span (a workflow step, a model run, a session), child of `parent` or else of the active
 * span, ending it with the outcome; without tracing, just runs it.
 */
export function inSpan<T>(
  name: string,
  attributes: Attributes,
  work: () => Promise<T>,
  parent?: TraceContext,
): Promise<T> {
  if (!tracer) return work();
  const from = parent ?? context.active();
  const span = tracer.startSpan(name, { attributes, kind: SpanKind.INTERNAL }, from);
  return context.with(trace.setSpan(from, span), work).then(
    (value) => {
      span.end();
      return value;
    },
    (err: unknown) => {
      failSpan(span, err);
      span.end();
      throw err;
    },
  );
}

/** Records `err` on `span` as its status and an exception event. */
export function failSpan(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  if (err instanceof Error) span.recordException(err);
}
