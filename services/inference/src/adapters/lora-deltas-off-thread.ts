import { Worker } from "node:worker_threads";
import { AdapterFileError } from "./adapter-errors.js";
import type { AdapterTarget } from "./adapter-target.js";
import type { DeltaJob, DeltaMessage } from "./lora-delta-worker.js";
import type { ModuleDelta } from "./lora-deltas.js";
import type { LoraRequest } from "./lora-plan.js";

// Always the compiled worker, from the sources (which vitest runs; `npm test` builds first) as from dist:
// both sit two folders below the package root, and Node runs no TypeScript in a worker.
const WORKER_URL = new URL("../../dist/adapters/lora-delta-worker.js", import.meta.url);

/** The job being received: its messages as they arrive, and whoever waits for the next. */
interface Receiving {
  readonly id: number;
  readonly inbox: DeltaMessage[];
  wake: (() => void) | undefined;
  ended: Error | undefined;
}

/**
 * planLoraSet + loraDeltas on one worker thread, started on first use (its start loads the modules, most of
 * a second on a busy machine) and kept: the same checks, refusals (an AdapterFileError naming file and key,
 * before any delta) and deltas, module by module, one set at a time.
 */
class LoraDeltaWorker {
  private worker: Worker | undefined;
  private receiving: Receiving | undefined;
  private turn: Promise<void> = Promise.resolve();
  private nextId = 1;

  async *deltas(requests: readonly LoraRequest[], target: AdapterTarget): AsyncGenerator<ModuleDelta> {
    const previous = this.turn;
    let done = () => {};
    this.turn = new Promise((resolve) => {
      done = resolve;
    });
    await previous;
    const job: Receiving = { id: this.nextId++, inbox: [], wake: undefined, ended: undefined };
    this.receiving = job;
    let finished = false;
    try {
      this.ensureWorker().postMessage({ id: job.id, requests, target } satisfies DeltaJob);
      for (;;) {
        const message = job.inbox.shift();
        if (message === undefined) {
          if (job.ended) throw job.ended;
          await new Promise<void>((resolve) => {
            job.wake = resolve;
          });
          continue;
        }
        if ("deltas" in message) yield* message.deltas;
        else {
          finished = true;
          if ("done" in message) return;
          if ("refused" in message) {
            const { file, problem, key } = message.refused;
            throw new AdapterFileError(file, problem, key);
          }
          throw new Error(message.failed);
        }
      }
    } finally {
      this.receiving = undefined;
      // A consumer that stopped early leaves the worker mid-job: end it, the next job starts a fresh one.
      if (!finished) await this.stop();
      done();
    }
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_URL);
    worker.unref();
    const end = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      const job = this.receiving;
      if (job) {
        job.ended ??= error;
        job.wake?.();
      }
    };
    worker.on("message", (message: DeltaMessage) => {
      const job = this.receiving;
      if (job?.id !== message.id) return;
      job.inbox.push(message);
      job.wake?.();
      job.wake = undefined;
    });
    worker.on("error", end);
    worker.on("exit", (code) => end(new Error(`the LoRA worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}

const shared = new LoraDeltaWorker();

/** The deltas of a LoRA set (see LoraDeltaWorker), computed off the event loop. */
export function loraDeltasOffThread(
  requests: readonly LoraRequest[],
  target: AdapterTarget,
): AsyncGenerator<ModuleDelta> {
  return shared.deltas(requests, target);
}
