/** What an AsyncChannel does when its consumer falls behind. */
export interface AsyncChannelOptions<T> {
  /** Past this many buffered values, `shed` is asked which one to drop. */
  readonly maxBuffered?: number;
  /** The index of a buffered value the consumer can do without (a progress event), or -1 to keep them all. */
  readonly shed?: (buffered: readonly T[]) => number;
}

/**
 * Callbacks to an async iterable: a producer pushes without ever waiting, one consumer iterates in order.
 * `close()` ends the iteration once the buffered values are consumed; `close(error)` then throws the error.
 * The one push-to-iterator channel of the mesh: a streaming handler's events, a batch's events.
 */
export class AsyncChannel<T> implements AsyncIterable<T> {
  private readonly buffer: T[] = [];
  private wake: (() => void) | undefined;
  private done = false;
  private failure: { error: unknown } | undefined;

  constructor(private readonly options: AsyncChannelOptions<T> = {}) {}

  /** Buffers a value for the consumer; ignored once the channel is closed. */
  push(value: T): void {
    if (this.done) return;
    const { maxBuffered, shed } = this.options;
    if (maxBuffered !== undefined && shed && this.buffer.length >= maxBuffered) {
      const drop = shed(this.buffer);
      if (drop >= 0) this.buffer.splice(drop, 1);
    }
    this.buffer.push(value);
    this.wake?.();
  }

  /** No more values: the consumer finishes the buffer, then ends (or throws `error`). Later closes are ignored. */
  close(error?: unknown): void {
    if (this.done) return;
    this.done = true;
    if (error !== undefined) this.failure = { error };
    this.wake?.();
  }

  get closed(): boolean {
    return this.done;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      if (this.buffer.length > 0) {
        yield this.buffer.shift() as T;
        continue;
      }
      if (this.done) {
        if (this.failure) throw this.failure.error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }
}
