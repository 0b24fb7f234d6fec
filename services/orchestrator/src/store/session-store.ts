import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { DenoiseCheckpoint } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import type { ImageInput } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  type Session,
  SessionSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";

/** Which sessions `list` answers: one tenant's (every tenant's when undefined), by id after `after`. */
export interface SessionFilter {
  tenant: string | undefined;
  states: SessionState[];
  batchId: string;
  limit: number;
  after: string;
}

/**
 * Sessions, their input images and their denoising checkpoints, as rows of the orchestrator database
 * (SQLite embedded, PostgreSQL on a server). Every method answers a promise; writes of one session are
 * applied in call order, with the values the arguments held at the call, and a read of a session sees the
 * writes of it called before.
 */
export interface SessionStore {
  /**
   * Inserts the session with its inputs in one transaction: it exists whole or not at all. `offered`: no
   * replica owns it yet, whichever has room claims it (several replicas on one database; else ignored).
   */
  create(
    session: Session,
    inputs: Record<string, ImageInput>,
    options?: { offered?: boolean },
  ): Promise<void>;
  save(session: Session): Promise<void>;
  /** Any tenant's session: its owner is checked by whoever answers a caller. */
  get(id: string): Promise<Session | undefined>;
  /** The tenant's session made for this request id: request ids are unique per tenant. */
  getByRequestId(tenant: string, requestId: string): Promise<Session | undefined>;
  /** By priority (higher first), then age. */
  listByState(state: SessionState): Promise<Session[]>;
  list(filter: SessionFilter): Promise<Session[]>;
  /** Adds or replaces named inputs (also a step's stored outputs) of an existing session. */
  putInputs(id: string, inputs: Record<string, ImageInput>): Promise<void>;
  /** Forgets stored step outputs and the checkpoint: a restart begins from nothing but the request. */
  resetProgress(id: string): Promise<void>;
  inputs(id: string): Promise<Record<string, ImageInput>>;
  /** Stores the session's state and its newest checkpoint together, so they never disagree after a crash. */
  saveWithCheckpoint(session: Session, checkpoint: DenoiseCheckpoint): Promise<void>;
  checkpoint(id: string): Promise<DenoiseCheckpoint | undefined>;
  dropCheckpoint(id: string): Promise<void>;
  delete(id: string): Promise<boolean>;
  /** Finished sessions last changed before `time` (ms since the epoch), every tenant's. */
  finishedBefore(time: number): Promise<{ id: string; tenant: string }[]>;
  counts(): Promise<Map<SessionState, number>>;
  /** Sessions stored, by state and tenant. */
  countsByTenant(): Promise<{ state: SessionState; tenant: string; count: number }[]>;
}

/** States a session no longer changes from on its own (a finished one). */
export const FINISHED_STATES = [SessionState.COMPLETED, SessionState.FAILED, SessionState.CANCELLED];

/** A stored session; its owner is the row's (sessions stored before tenants existed lack it in `data`). */
export function sessionOf(row: { tenant: string; data: Uint8Array } | undefined): Session | undefined {
  if (!row) return undefined;
  const session = fromBinary(SessionSchema, row.data);
  session.tenant = row.tenant;
  return session;
}

export function newSession(init: MessageInitShape<typeof SessionSchema>): Session {
  return create(SessionSchema, { state: SessionState.QUEUED, ...init });
}
