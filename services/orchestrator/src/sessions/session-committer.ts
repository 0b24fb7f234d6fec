import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  type Session,
  SessionEventKind,
  SessionEventSchema,
  SessionSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { GroupCommit } from "../store/group-commit.js";
import type { SessionStore } from "../store/session-store.js";
import type { SessionEvents } from "./session-events.js";
import type { CommitOptions, Persistence } from "./session-runner.js";

const TERMINAL = new Set([SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED]);

/**
 * How every change of a session is committed: stored, and told to watchers in order, what a restart must find
 * only once it is on disk. Keeps `live` (the unfinished sessions by id) in step with what it commits.
 */
export class SessionCommitter {
  /** Sessions with a cached state change not yet stored or told (see `commit`). */
  private readonly held = new Set<Session>();

  constructor(
    private readonly store: SessionStore,
    private readonly commits: GroupCommit,
    private readonly events: SessionEvents,
    private readonly live: Map<string, Session>,
  ) {}

  commit(session: Session, kind: SessionEventKind, options: CommitOptions = {}): void {
    const persist = options.persist ?? "durable";
    if (TERMINAL.has(session.state)) this.live.delete(session.id);
    else this.live.set(session.id, session);
    // A state change that a restart redoes is held to the end of the turn (its microtasks included: the store
    // answers reads by promise): when the session changes again in the same turn (RUNNING, then its step,
    // then its replica), one save and one event carry it all.
    if (this.held.delete(session) && kind !== SessionEventKind.STATE)
      this.record(session, SessionEventKind.STATE, "cached");
    if (kind === SessionEventKind.STATE && persist === "cached") {
      this.held.add(session);
      setImmediate(() => {
        if (this.held.delete(session)) this.record(session, SessionEventKind.STATE, "cached");
      });
    } else this.record(session, kind, persist, options);
  }

  /** Bumps the sequence, stores (unless "none") and tells watchers, durable changes once they are on disk. */
  private record(
    session: Session,
    kind: SessionEventKind,
    persist: Persistence,
    options: CommitOptions = {},
  ) {
    session.sequence += 1n;
    session.updatedAt = timestampNow();
    // The write is applied in call order; the group commit waits for it before it tells anyone.
    if (persist !== "none") this.commits.track(this.store.save(session));
    // Watchers get a copy: the live session keeps changing while their events wait to be sent.
    const event = create(SessionEventSchema, {
      kind,
      session: clone(SessionSchema, session),
      artifactId: options.artifactId ?? "",
      ...(options.preview ? { preview: options.preview } : {}),
    });
    if (persist === "durable") this.commits.afterSync(() => this.events.publish(event));
    else this.commits.inOrder(() => this.events.publish(event));
  }
}
