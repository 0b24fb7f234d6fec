import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Abandons a stream that stays silent (a hung or frozen replica): streams have no overall deadline because a
 * generation may rightly take long, so the deadline is on the gap between events instead. `pet` on every
 * event; `signal` aborts once `idleMs` pass without one.
 */
export class StreamWatchdog {
  private readonly idle = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly idleMs: number,
    private readonly what: string,
  ) {
    this.pet();
  }

  get signal(): AbortSignal {
    return this.idle.signal;
  }

  pet(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () =>
        this.idle.abort(
          new ConnectError(`no event from ${this.what} for ${this.idleMs} ms`, Code.DeadlineExceeded),
        ),
      this.idleMs,
    );
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
