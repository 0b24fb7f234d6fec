import { AbortedError, counter, gauge, histogram, inSpan, ResourceExhaustedError } from "@dmesh/runtime";

/**
 * The inference service's metrics (`dmesh_inference_` prefix, base units, labels from small fixed sets). Hot
 * paths record into them directly; gauges read their sources when scraped.
 */

export const queueWaitSeconds = histogram({
  name: "dmesh_inference_queue_wait_seconds",
  help: "Time a generation waited in this replica's queue before it started.",
});

export const computeSeconds = histogram({
  name: "dmesh_inference_compute_seconds",
  help: "Time a generation ran once started: model load, prompt encoding, denoising and decoding.",
});

export const denoiseStepSeconds = histogram({
  name: "dmesh_inference_denoise_step_seconds",
  help: "Time one denoising step took (the UNet run, guidance and the scheduler's step).",
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
});

export const unetBatchSize = histogram({
  name: "dmesh_inference_unet_batch_size",
  help: "Rows of one UNet run (its batch dimension: images, twice that with guidance, across requests sharing it).",
  buckets: [1, 2, 4, 8, 16, 32, 64, 128],
});

/** How a generation ended. */
export type GenerationResult = "completed" | "paused" | "cancelled" | "failed" | "rejected";

export const generations = counter({
  name: "dmesh_inference_generations_total",
  help: "Generations ended, by result: completed, paused, cancelled, failed, or rejected (queue full).",
  labelNames: ["result"],
});

/** Counts a generation that failed: rejected (queue full), cancelled, or failed. */
export function generationEnded(err: unknown, signal: AbortSignal): void {
  const result: GenerationResult =
    err instanceof ResourceExhaustedError
      ? "rejected"
      : signal.aborted || err instanceof AbortedError
        ? "cancelled"
        : "failed";
  generations.inc({ result });
}

export const modelLoads = counter({
  name: "dmesh_inference_model_loads_total",
  help: "Model suites loaded, by result (ok or error).",
  labelNames: ["result"],
});

export const modelLoadSeconds = histogram({
  name: "dmesh_inference_model_load_seconds",
  help: "Time loading one model suite took (every ONNX session of it created).",
});

export const modelUnloads = counter({
  name: "dmesh_inference_model_unloads_total",
  help: "Model suites unloaded (evicted as least recently used, or asked to).",
});

/**
 * Cache lookups of merged adapter sets (LoRA weights merged into a model's UNet and text encoders), by
 * result. The adapter cache calls `adapterSetCache(hit)` at each lookup.
 */
export const adapterSetCache = counter({
  name: "dmesh_inference_adapter_set_cache_total",
  help: "Lookups of merged adapter sets in the cache, by result (hit or miss).",
  labelNames: ["result"],
});

export function recordAdapterSetLookup(hit: boolean): void {
  adapterSetCache.inc({ result: hit ? "hit" : "miss" });
}

/** What the scrape-time gauges read. */
export interface InferenceGaugeSources {
  readonly queued: () => number;
  readonly running: () => number;
  readonly modelsLoaded: () => number;
}

let sources: InferenceGaugeSources | undefined;

gauge({
  name: "dmesh_inference_queue_depth",
  help: "Generations waiting in this replica's queue.",
  collect() {
    this.set(sources?.queued() ?? 0);
  },
});

gauge({
  name: "dmesh_inference_generations_running",
  help: "Generations running in this replica.",
  collect() {
    this.set(sources?.running() ?? 0);
  },
});

gauge({
  name: "dmesh_inference_models_loaded",
  help: "Model suites loaded in this replica.",
  collect() {
    this.set(sources?.modelsLoaded() ?? 0);
  },
});

/** Where the gauges read their values at each scrape (the service's queue and model registry). */
export function gaugeInferenceFrom(from: InferenceGaugeSources): void {
  sources = from;
}

/** Loads a model suite in a span, counting the load and its seconds. */
export async function observeModelLoad<T>(model: string, load: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const loaded = await inSpan("model load", { "dmesh.model": model }, load);
    modelLoads.inc({ result: "ok" });
    return loaded;
  } catch (err) {
    modelLoads.inc({ result: "error" });
    throw err;
  } finally {
    modelLoadSeconds.observe((performance.now() - started) / 1000);
  }
}
