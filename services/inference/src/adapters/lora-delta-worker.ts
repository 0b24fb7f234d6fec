import { parentPort } from "node:worker_threads";
import { AdapterFileError } from "./adapter-errors.js";
import type { AdapterTarget } from "./adapter-target.js";
import { loraDeltas, type ModuleDelta } from "./lora-deltas.js";
import { type LoraRequest, planLoraSet } from "./lora-plan.js";

/** A LoRA set to check and turn into deltas, off the service's event loop. */
export interface DeltaJob {
  readonly id: number;
  readonly requests: readonly LoraRequest[];
  readonly target: AdapterTarget;
}

/** What the worker posts: each module's delta (its buffer transferred), then the end or a refusal. */
export type DeltaMessage = { readonly id: number } & (
  | { readonly delta: ModuleDelta }
  | { readonly done: true }
  | { readonly refused: { readonly file: string; readonly problem: string; readonly key?: string } }
  | { readonly failed: string }
);

// The worker thread's entry: planLoraSet's checks and loraDeltas' arithmetic are plain synchronous
// JavaScript, seconds for a full SDXL LoRA; here they cannot hold up health, cancellation or progress.
// One job at a time: the caller sends the next when this one has ended.
parentPort?.on("message", async (job: DeltaJob) => {
  const port = parentPort;
  if (!port) return;
  const id = job.id;
  try {
    const plan = await planLoraSet(job.requests, job.target);
    try {
      for await (const delta of loraDeltas(plan)) {
        const message: DeltaMessage = { id, delta };
        port.postMessage(message, [delta.delta.buffer as ArrayBuffer]);
      }
    } finally {
      await plan.close();
    }
    port.postMessage({ id, done: true } satisfies DeltaMessage);
  } catch (error) {
    const message: DeltaMessage =
      error instanceof AdapterFileError
        ? {
            id,
            refused: {
              file: error.file,
              problem: error.problem,
              ...(error.key === undefined ? {} : { key: error.key }),
            },
          }
        : { id, failed: error instanceof Error ? error.message : String(error) };
    port.postMessage(message);
  }
});
