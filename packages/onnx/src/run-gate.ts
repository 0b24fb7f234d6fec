/**
 * Turns taken one at a time, first come first served. Every session's worker thread runs through one gate
 * per process: one model computes at a time, with every intra-op thread onnxruntime gives it (one per core
 * by default), as when runs blocked the event loop. Two at once would only split the same cores between two
 * thread pools (oversubscribed, each spinning while the other works); requests share a UNet run instead
 * (MAX_UNET_BATCH).
 */
export class RunGate {
  private busy = false;
  private readonly waiting: (() => void)[] = [];

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.busy) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.busy = true;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy = false;
    }
  }
}

/** The process's gate for onnxruntime runs on worker threads. */
export const ortRunGate = new RunGate();
