import { checkIntegerInRange } from "../validation/check-number.js";

/** A share of the budget; `release` is idempotent. */
export interface PixelLease {
  readonly pixels: number;
  release(): void;
}

interface Waiter {
  readonly pixels: number;
  readonly grant: (lease: PixelLease) => void;
}

/**
 * A weighted semaphore over pixels held by requests in progress (decoded inputs and the outputs made from
 * them), so that memory stays bounded however many requests arrive at once. Waiters are served first in,
 * first out, so a large request is not starved by a stream of small ones; a request larger than the whole
 * budget waits until it can run alone.
 */
export class PixelBudget {
  private inUse = 0;
  private readonly queue: Waiter[] = [];

  constructor(readonly capacity: number) {
    checkIntegerInRange("capacity", capacity, 1, Number.MAX_SAFE_INTEGER);
  }

  get used(): number {
    return this.inUse;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Waits for `pixels` (clamped to the capacity); rejects with the signal's reason if it aborts first. */
  acquire(pixels: number, signal?: AbortSignal): Promise<PixelLease> {
    const want = Math.min(this.capacity, Math.max(1, Math.ceil(pixels)));
    signal?.throwIfAborted();
    if (this.queue.length === 0 && this.inUse + want <= this.capacity) {
      return Promise.resolve(this.grant(want));
    }
    return new Promise<PixelLease>((resolve, reject) => {
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        // The head may have been the one blocking those behind it.
        this.drain();
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        pixels: want,
        grant: (lease) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(lease);
        },
      };
      this.queue.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Runs `work` holding `pixels` of the budget. */
  async use<T>(pixels: number, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    const lease = await this.acquire(pixels, signal);
    try {
      return await work();
    } finally {
      lease.release();
    }
  }

  private grant(pixels: number): PixelLease {
    this.inUse += pixels;
    let released = false;
    return {
      pixels,
      release: () => {
        if (released) return;
        released = true;
        this.inUse -= pixels;
        this.drain();
      },
    };
  }

  private drain(): void {
    for (let head = this.queue[0]; head; head = this.queue[0]) {
      if (this.inUse + head.pixels > this.capacity) return;
      this.queue.shift();
      head.grant(this.grant(head.pixels));
    }
  }
}
