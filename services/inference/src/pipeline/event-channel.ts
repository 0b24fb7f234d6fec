/**
 * Turns callbacks into an async iterable for a streaming handler. Pushes never block the pipeline; the
 * buffer stays small because a generation emits a few events per denoising step.
 */
export class EventChannel<T> {
  private readonly buffer: T[] = [];
  private wake: (() => void) | undefined;
  private done = false;
  private failure: unknown;

  push(value: T): void {
    this.buffer.push(value);
    this.wake?.();
  }

  close(error?: unknown): void {
    this.done = true;
    this.failure = error;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      const next = this.buffer.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.done) {
        if (this.failure !== undefined) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }
}
