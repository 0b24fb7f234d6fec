import { setMaxListeners } from "node:events";
import { clone, create } from "@bufbuild/protobuf";
import {
  type Session,
  type SessionEvent,
  SessionEventKind,
  SessionEventSchema,
  SessionSchema,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";

const MAX_BUFFERED = 256;

/**
 * Fans session events out to any number of watchers. A slow watcher never grows memory without bound:
 * past MAX_BUFFERED pending events its queued progress events are dropped (state and artifact events stay).
 */
export class SessionEvents {
  private readonly watchers = new Map<string, Set<(event: SessionEvent) => void>>();
  private readonly stateListeners = new Set<(event: SessionEvent) => void>();
  private readonly publishListeners = new Set<(event: SessionEvent) => void>();
  private readonly remoteStateListeners = new Set<(event: SessionEvent) => void>();
  private readonly shutdown = new AbortController();

  constructor() {
    // Every watch stream listens to it: hundreds at once is normal, not a leak.
    setMaxListeners(0, this.shutdown.signal);
  }

  /** Aborted (with the reason streams end with) when the orchestrator shuts down. */
  get closed(): AbortSignal {
    return this.shutdown.signal;
  }

  /** Ends every watch stream with `reason`. */
  close(reason: Error): void {
    this.shutdown.abort(reason);
  }

  publish(event: SessionEvent): void {
    const id = event.session?.id ?? "";
    for (const watcher of this.watchers.get(id) ?? []) watcher(event);
    if (event.kind !== SessionEventKind.PROGRESS) for (const listener of this.stateListeners) listener(event);
    for (const listener of this.publishListeners) listener(event);
  }

  /**
   * An event another orchestrator replica told (it owns the session): this replica's watchers of the session
   * get it; its batches and lifecycle listeners follow only the sessions it runs.
   */
  deliver(event: SessionEvent): void {
    for (const watcher of this.watchers.get(event.session?.id ?? "") ?? []) watcher(event);
    if (event.kind !== SessionEventKind.PROGRESS)
      for (const listener of this.remoteStateListeners) listener(event);
  }

  /** Non-progress events of sessions other replicas run (a batch fed here follows its items there). */
  onRemoteStateChange(listener: (event: SessionEvent) => void): void {
    this.remoteStateListeners.add(listener);
  }

  /** Every event this replica tells (`publish`), for the other replicas' watchers. */
  onPublish(listener: (event: SessionEvent) => void): void {
    this.publishListeners.add(listener);
  }

  /** Every non-progress event of every session (batches follow their items this way). */
  onStateChange(listener: (event: SessionEvent) => void): void {
    this.stateListeners.add(listener);
  }

  /**
   * The snapshot first, once `settle` resolves (e.g. it is on disk), then every newer event (by sequence)
   * until the signal aborts or `isLast` says the stream is done.
   */
  async *watch(
    snapshot: Session,
    signal: AbortSignal,
    isLast: (event: SessionEvent) => boolean,
    settle: () => Promise<void> = async () => {},
  ): AsyncGenerator<SessionEvent> {
    const first = create(SessionEventSchema, {
      kind: SessionEventKind.SNAPSHOT,
      session: clone(SessionSchema, snapshot),
    });
    const pending: SessionEvent[] = [];
    let wake: (() => void) | undefined;
    const listener = (event: SessionEvent) => {
      if (pending.length >= MAX_BUFFERED) {
        const i = pending.findIndex((e) => e.kind === SessionEventKind.PROGRESS);
        if (i >= 0) pending.splice(i, 1);
      }
      pending.push(event);
      wake?.();
    };
    const set = this.watchers.get(snapshot.id) ?? new Set();
    this.watchers.set(snapshot.id, set);
    set.add(listener);
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    this.closed.addEventListener("abort", onAbort);
    try {
      await settle();
      yield first;
      if (isLast(first)) return;
      const seen = first.session?.sequence ?? 0n;
      while (!signal.aborted) {
        if (this.closed.aborted) throw this.closed.reason;
        const event = pending.shift();
        if (!event) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        // Events committed before the snapshot but told after it are in it already.
        if ((event.session?.sequence ?? 0n) <= seen) continue;
        yield event;
        if (isLast(event)) return;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.closed.removeEventListener("abort", onAbort);
      set.delete(listener);
      if (set.size === 0) this.watchers.delete(snapshot.id);
    }
  }

  watcherCount(sessionId: string): number {
    return this.watchers.get(sessionId)?.size ?? 0;
  }
}
