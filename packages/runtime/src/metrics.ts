import {
  Counter,
  type CounterConfiguration,
  collectDefaultMetrics,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  type Metric,
  Registry,
} from "prom-client";

/** The process's one registry: every metric a service has, served at `/metrics`. */
export const metricsRegistry = new Registry();

let processMetrics = false;

/**
 * prom-client's `process_*` and `nodejs_*` metrics, registered once, when a process first serves metrics;
 * less the three gauges it names `*_total`, which `promtool check metrics` rejects (a `_total` suffix promises
 * a counter) and which are the sums of `nodejs_active_handles`, `_requests` and `_resources` anyway.
 */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: metricsRegistry });
  for (const kind of ["handles", "requests", "resources"])
    metricsRegistry.removeSingleMetric(`nodejs_active_${kind}_total`);
}

/**
 * Bounds for durations from a quick call to a long generation, in seconds: Prometheus' default buckets
 * (what go-grpc-prometheus uses) extended to five minutes.
 */
export const SECONDS_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];

/** The metric of that name, or a new one: modules loaded twice in one process (tests) share it. */
function registered<M extends Metric>(name: string, make: () => M): M {
  return (metricsRegistry.getSingleMetric(name) as M | undefined) ?? make();
}

export function counter<L extends string = string>(config: CounterConfiguration<L>): Counter<L> {
  return registered(config.name, () => new Counter({ ...config, registers: [metricsRegistry] }));
}

export function gauge<L extends string = string>(config: GaugeConfiguration<L>): Gauge<L> {
  return registered(config.name, () => new Gauge({ ...config, registers: [metricsRegistry] }));
}

export function histogram<L extends string = string>(config: HistogramConfiguration<L>): Histogram<L> {
  return registered(
    config.name,
    () => new Histogram({ buckets: [...SECONDS_BUCKETS], ...config, registers: [metricsRegistry] }),
  );
}

/**
 * Registers a metric family of our own, anything with the `name` and `get()` that the registry reads (the
 * gRPC collectors), once.
 */
export function registerMetric(metric: { readonly name: string; get(): unknown }): void {
  if (!metricsRegistry.getSingleMetric(metric.name))
    metricsRegistry.registerMetric(metric as unknown as Metric);
}

/** The exposition a scrape gets: Prometheus text format 0.0.4. */
export async function metricsExposition(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}
