import { setMaxListeners } from "node:events";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  type MeshEvent,
  MeshEventKind,
  MeshEventSchema,
} from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";

/** Events a watcher may hold unsent; past that the oldest are dropped, so a stalled watcher cannot grow memory. */
const MAX_PENDING = 1024;

/** Who is watching: with API keys on, session and batch events are limited to the caller's tenant. */
export interface WatchScope {
  /** Undefined = every tenant (keys off, or an admin key). */
  readonly tenant?: string;
}

/**
 * Fans mesh events out to their watchers, each filtered by kind (and by tenant for session and batch events).
 * In-process: the orchestrator is where replica health and sessions are already watched, so no broker is
 * needed; each orchestrator replica tells what it sees.
 */
export class MeshEventHub {
  private readonly watchers = new Set<(event: MeshEvent) => void>();
  private readonly shutdown = new AbortController();
  private snapshot: () => MeshEvent[] = () => [];

  constructor() {
    setMaxListeners(0, this.shutdown.signal);
  }

  publish(init: MeshEventInit): void {
    if (this.watchers.size === 0) return;
    const event = meshEvent(init);
    for (const watcher of this.watchers) watcher(event);
  }

  /** What a new watch stream opens with: the current state of things (every replica up or down). */
  snapshotFrom(snapshot: () => MeshEvent[]): void {
    this.snapshot = snapshot;
  }

  /** Ends every watch stream with `reason` (the orchestrator shutting down). */
  close(reason: Error): void {
    this.shutdown.abort(reason);
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /**
   * The snapshot, then events of `kinds` (empty = all) in `scope` from now until `signal` aborts or the hub
   * closes.
   */
  async *watch(
    kinds: ReadonlySet<MeshEventKind>,
    scope: WatchScope,
    signal: AbortSignal,
  ): AsyncGenerator<MeshEvent> {
    const pending: MeshEvent[] = [];
    let wake: (() => void) | undefined;
    const watcher = (event: MeshEvent) => {
      if (kinds.size > 0 && !kinds.has(event.kind)) return;
      if (!inScope(event, scope)) return;
      if (pending.length >= MAX_PENDING) pending.shift();
      pending.push(event);
      wake?.();
    };
    const onAbort = () => wake?.();
    this.watchers.add(watcher);
    for (const event of this.snapshot()) watcher(event);
    signal.addEventListener("abort", onAbort);
    this.shutdown.signal.addEventListener("abort", onAbort);
    try {
      while (!signal.aborted) {
        if (this.shutdown.signal.aborted) throw this.shutdown.signal.reason;
        const event = pending.shift();
        if (event) {
          yield event;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      this.watchers.delete(watcher);
      signal.removeEventListener("abort", onAbort);
      this.shutdown.signal.removeEventListener("abort", onAbort);
    }
  }
}

export type MeshEventInit = Pick<MessageInitShape<typeof MeshEventSchema>, "kind" | "detail">;

/** An event stamped now. */
export function meshEvent(init: MeshEventInit): MeshEvent {
  return create(MeshEventSchema, { ...init, time: timestampNow() });
}

function inScope(event: MeshEvent, scope: WatchScope): boolean {
  if (scope.tenant === undefined) return true;
  const detail = event.detail;
  if (detail.case === "session" || detail.case === "batch") return detail.value.tenant === scope.tenant;
  return true;
}

export { MeshEventKind };
