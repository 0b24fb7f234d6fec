import { AbortedError, ResourceExhaustedError } from "@dmesh/runtime/errors";
import { computeSeconds, queueWaitSeconds } from "../inference-metrics.js";

/**
 * Caps generations running at once (onnxruntime already uses every core for one) and the number waiting;
 * past that a request fails fast with RESOURCE_EXHAUSTED rather than queueing without bound.
 */
export class GenerationQueue {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueued: number,
  ) {}

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    const arrived = performance.now();
    if (this.active >= this.maxConcurrent) {
      if (this.waiting.length >= this.maxQueued) {
        throw new ResourceExhaustedError(
          `inference queue is full (${this.active} running, ${this.waiting.length} waiting)`,
        );
      }
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const i = this.waiting.indexOf(go);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new AbortedError("cancelled while queued"));
        };
        const go = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
        this.waiting.push(go);
        signal.addEventListener("abort", onAbort, { once: true });
      });
    } else this.active++;
    const started = performance.now();
    queueWaitSeconds.observe((started - arrived) / 1000);
    try {
      return await work();
    } finally {
      computeSeconds.observe((performance.now() - started) / 1000);
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
