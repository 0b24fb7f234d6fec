import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import {
  type Session,
  type SessionEvent,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { OrchestratorClients } from "./test-mesh.js";

export type SpecInit = MessageInitShape<typeof GenerationSpecSchema>;

export interface TinySpecOptions {
  prompt?: string;
  seed?: number;
  size?: number;
  steps?: number;
  /** img2img / inpaint strength. */
  strength?: number;
}

/** A txt2img spec for the tiny model; small sizes and few steps keep a generation around 0.1 s. */
export function tinySpec(options: TinySpecOptions = {}): SpecInit {
  const size = options.size ?? 64;
  return {
    conditioning: { prompt: options.prompt ?? "a lighthouse on a cliff" },
    size: { width: size, height: size },
    scheduler: { steps: options.steps ?? 4 },
    params: { seed: BigInt(options.seed ?? 1234), guidanceScale: 5, strength: options.strength },
  };
}

const FINISHED = new Set([SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED]);

export function isFinished(session: Session | undefined): boolean {
  return session !== undefined && FINISHED.has(session.state);
}

/** Every event of a session (or batch) stream, in order, until the stream ends. */
export async function collect<E = SessionEvent>(stream: AsyncIterable<{ event?: E }>): Promise<E[]> {
  const events: E[] = [];
  for await (const { event } of stream) if (event) events.push(event);
  return events;
}

/** Watches a session until it finishes (a watcher's stream ends there) and returns its last state. */
export async function waitFinished(
  clients: OrchestratorClients,
  sessionId: string,
  timeoutMs = 30_000,
): Promise<Session> {
  const events = await collect(clients.processing.watchSession({ sessionId }, { timeoutMs }));
  const last = events.at(-1)?.session;
  if (!last || !isFinished(last))
    throw new Error(`session ${sessionId} did not finish: ${last ? SessionState[last.state] : "no events"}`);
  return last;
}

/** The stored bytes of an artifact, read back through ArtifactService. */
export async function artifactBytes(clients: OrchestratorClients, artifactId: string): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const res of clients.artifacts.getArtifact({ artifactId }))
    if (res.chunk.length > 0) chunks.push(res.chunk);
  return Buffer.concat(chunks);
}

/** Polls `check` until it returns a value (not undefined) or the time is up. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
