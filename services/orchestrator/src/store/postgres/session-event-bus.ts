import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type Session,
  type SessionEvent,
  type SessionEventKind,
  SessionEventSchema,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { Logger } from "@dmesh/runtime/logger";
import type { SessionStore } from "../session-store.js";
import { MAX_PAYLOAD, PgChannel } from "./pg-channel.js";
import type { PgDatabase } from "./pg-database.js";

const CHANNEL = "dmesh_session_events";

/**
 * Session events between replicas (LISTEN/NOTIFY): what one replica tells its watchers, every other replica
 * tells its own, so that a watcher connected to any replica sees every event of the session. An event goes
 * as its bytes (previews left out: they are large and a watcher elsewhere can do without them); one too
 * large for a notification goes as a reference, and the listener reads the session from the database.
 */
export class SessionEventBus {
  private readonly channel: PgChannel;
  /** One notification at a time: sent on different connections, two could arrive in either order. */
  private sending = Promise.resolve();

  constructor(
    private readonly db: PgDatabase,
    url: string,
    private readonly replicaId: string,
    private readonly sessions: SessionStore,
    logger: Logger,
  ) {
    this.channel = new PgChannel(url, CHANNEL, logger);
  }

  /** Tells the other replicas; call once the event may be told (it is on disk). */
  publish(event: SessionEvent): Promise<void> {
    const payload = encodeEvent(this.replicaId, event);
    const sent = this.sending.then(() => PgChannel.notify(this.db.pool, CHANNEL, payload));
    this.sending = sent.catch(() => {});
    return sent;
  }

  /** Every other replica's events, in the order each sent them. */
  async subscribe(onEvent: (event: SessionEvent, from: string) => void): Promise<void> {
    // Decoding a reference reads the database: kept in order by chaining.
    let chain = Promise.resolve();
    await this.channel.listen((payload) => {
      chain = chain.then(async () => {
        const decoded = await decodeEvent(payload, (id) => this.sessions.get(id));
        if (decoded && decoded.from !== this.replicaId) onEvent(decoded.event, decoded.from);
      });
    });
  }

  close(): Promise<void> {
    return this.channel.close();
  }
}

/** `<replica> <kind> <base64 event>` or, too large, `<replica> ref <kind> <session id> <artifact id>`. */
export function encodeEvent(from: string, event: SessionEvent): string {
  const light = create(SessionEventSchema, { ...event, preview: undefined });
  const full = `${from} ${event.kind} ${Buffer.from(toBinary(SessionEventSchema, light)).toString("base64")}`;
  if (Buffer.byteLength(full) <= MAX_PAYLOAD) return full;
  return `${from} ref ${event.kind} ${event.session?.id ?? ""} ${event.artifactId || "-"}`;
}

export async function decodeEvent(
  payload: string,
  load: (sessionId: string) => Promise<Session | undefined>,
): Promise<{ from: string; event: SessionEvent } | undefined> {
  const parts = payload.split(" ");
  const [from, second] = parts;
  if (!from || !second) return undefined;
  if (second !== "ref")
    return { from, event: fromBinary(SessionEventSchema, Buffer.from(parts[2] ?? "", "base64")) };
  const [, , kind, sessionId, artifactId] = parts;
  const session = sessionId ? await load(sessionId) : undefined;
  if (!session) return undefined;
  return {
    from,
    event: create(SessionEventSchema, {
      kind: Number(kind) as SessionEventKind,
      session,
      artifactId: artifactId === "-" ? "" : (artifactId ?? ""),
    }),
  };
}
