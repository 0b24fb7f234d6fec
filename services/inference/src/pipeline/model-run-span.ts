import { inSpan } from "@dmesh/runtime/tracing";

/**
 * One run of a model component (a text encoder, the UNet, a VAE half) in a span of its own when tracing is
 * on, child of the generation's. The pipeline's every model run goes through here, whatever executes it
 * (an ONNX Runtime session on this thread or elsewhere), so the span measures what the pipeline waits for.
 */
export function modelRun<T>(model: string, component: string, run: () => Promise<T>): Promise<T> {
  return inSpan(`model run ${component}`, { "dmesh.model": model, "dmesh.component": component }, run);
}
