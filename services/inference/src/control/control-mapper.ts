import { Worker } from "node:worker_threads";
import { UnavailableError } from "@dmesh/runtime/errors";
import { GenerationQueue } from "../pipeline/generation-queue.js";
import type { ControlMap, ControlMapPlan } from "./control-map.js";
import type { ControlJob, ControlJobResult } from "./control-worker.js";
import type { RgbImage } from "./rgb-image.js";

// Always the compiled worker, from the sources (which vitest runs; `npm test` builds first) as from dist:
// both sit two folders below the package root, and Node runs no TypeScript in a worker.
const WORKER_URL = new URL("../../dist/control/control-worker.js", import.meta.url);

interface Waiter {
  resolve(map: ControlMap): void;
  reject(err: Error): void;
}

/**
 * Makes control maps on one worker thread, started on first use, one image at a time: OpenCV's WebAssembly
 * is synchronous and single-threaded, so a second thread would only add another 100 MB heap. At most
 * `maxQueued` requests wait (then RESOURCE_EXHAUSTED); a job past `jobTimeoutMs` ends the worker.
 */
export class ControlMapper {
  private worker: Worker | undefined;
  private readonly queue: GenerationQueue;
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;

  constructor(
    maxQueued = 8,
    private readonly jobTimeoutMs = 60_000,
  ) {
    this.queue = new GenerationQueue(1, maxQueued);
  }

  /** The control map of an RGB image; the image's pixels move to the worker (the caller must not reuse them). */
  map(image: RgbImage, plan: ControlMapPlan, signal: AbortSignal): Promise<ControlMap> {
    return this.queue.run(signal, () => this.post(image, plan));
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private post(image: RgbImage, plan: ControlMapPlan): Promise<ControlMap> {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    // Transfer needs a buffer of its own: a view into a larger (e.g. pooled) buffer is copied first, into a
    // new one (a Node Buffer's slice() is another view of the same memory, whose transfer would detach the
    // rest of the request it came in).
    const data =
      image.data.byteOffset === 0 && image.data.byteLength === image.data.buffer.byteLength
        ? image.data
        : new Uint8Array(image.data);
    const job: ControlJob = { id, image: { ...image, data }, plan };
    return new Promise<ControlMap>((resolve, reject) => {
      const timer = setTimeout(() => {
        void this.fail(
          worker,
          new UnavailableError(`control preprocessing took over ${this.jobTimeoutMs} ms`),
        );
      }, this.jobTimeoutMs);
      const settle = () => {
        clearTimeout(timer);
        this.waiters.delete(id);
      };
      this.waiters.set(id, {
        resolve: (map) => {
          settle();
          resolve(map);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      });
      try {
        worker.postMessage(job, [data.buffer as ArrayBuffer]);
      } catch (err) {
        this.waiters.get(id)?.reject(err as Error);
      }
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_URL);
    worker.unref();
    worker.on("message", (result: ControlJobResult) => {
      const waiter = this.waiters.get(result.id);
      if (!waiter) return;
      if ("error" in result) waiter.reject(new Error(`control preprocessing failed: ${result.error}`));
      else waiter.resolve({ map: result.map, resolution: result.resolution });
    });
    worker.on("error", (err) => void this.fail(worker, err));
    worker.on("exit", (code) => void this.fail(worker, new Error(`control worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  /** Ends a worker that failed or overran, failing what it had; the next job starts a fresh one. */
  private async fail(worker: Worker, err: Error): Promise<void> {
    if (this.worker === worker) this.worker = undefined;
    for (const waiter of [...this.waiters.values()]) waiter.reject(err);
    await worker.terminate();
  }
}
