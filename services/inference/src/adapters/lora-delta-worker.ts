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

/**
 * What the worker posts: modules' deltas, a few MiB at a time (their buffers transferred: a message per
 * module costs more than the module on a busy machine), then the end or a refusal.
 */
export type DeltaMessage = { readonly id: number } & (
  | { readonly deltas: readonly ModuleDelta[] }
  | { readonly done: true }
  | { readonly refused: { readonly file: string; readonly problem: string; readonly key?: string } }
  | { readonly failed: string }
);

// The worker thread's entry: planLoraSet's checks and loraDeltas' arithmetic are plain synchronous
// JavaScript, seconds for a full SDXL LoRA; here they cannot hold up health, cancellation or progress.
const BATCH_BYTES = 16 * 1024 * 1024;

// One job at a time: the caller sends the next when this one has ended.
parentPort?.on("message", async (job: DeltaJob) => {
  const port = parentPort;
  if (!port) return;
  const id = job.id;
  try {
    const plan = await planLoraSet(job.requests, job.target);
    try {
      let batch: ModuleDelta[] = [];
      let bytes = 0;
      const send = () => {
        const message: DeltaMessage = { id, deltas: batch };
        port.postMessage(
          message,
          batch.map((d) => d.delta.buffer as ArrayBuffer),
        );
        batch = [];
        bytes = 0;
      };
      for await (const delta of loraDeltas(plan)) {
        batch.push(delta);
        bytes += delta.delta.byteLength;
        if (bytes >= BATCH_BYTES) send();
      }
      if (batch.length > 0) send();
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
