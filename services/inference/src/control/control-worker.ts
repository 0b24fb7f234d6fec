import { parentPort } from "node:worker_threads";
import { type ControlMapPlan, makeControlMap } from "./control-map.js";
import { loadOpenCv } from "./opencv.js";
import type { RgbImage } from "./rgb-image.js";

/** One control image for the worker to map; its pixel buffer is transferred, not copied. */
export interface ControlJob {
  readonly id: number;
  readonly image: RgbImage;
  readonly plan: ControlMapPlan;
}

export type ControlJobResult =
  | { readonly id: number; readonly map: RgbImage; readonly resolution: number }
  | { readonly id: number; readonly error: string };

// The worker thread's entry: OpenCV's WebAssembly runs synchronously, so it runs here, where it cannot hold
// up the service's event loop (health, cancellation, progress) while it works.
parentPort?.on("message", async (job: ControlJob) => {
  let result: ControlJobResult;
  try {
    const { cv } = await loadOpenCv();
    const { map, resolution } = makeControlMap(cv, job.image, job.plan);
    result = { id: job.id, map, resolution };
  } catch (err) {
    result = { id: job.id, error: await describe(err) };
  }
  parentPort?.postMessage(result, "map" in result ? [result.map.data.buffer as ArrayBuffer] : []);
});

/** OpenCV's WebAssembly throws C++ exceptions as heap pointers; those become their message. */
async function describe(err: unknown): Promise<string> {
  if (err instanceof Error) return err.message;
  if (typeof err === "number") {
    const { cv } = await loadOpenCv();
    const found = (cv as unknown as { exceptionFromPtr?: (p: number) => { msg: string } }).exceptionFromPtr;
    if (found) return `OpenCV: ${found(err).msg}`;
  }
  return String(err);
}
