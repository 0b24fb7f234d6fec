import type { Batch } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import type { Session, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { millis } from "../ui/format.js";
import { api } from "./clients.js";

const PAGE = 1000;
/** A playground lists at most this many pages of each kind. */
const MAX_PAGES = 5;

/** Sessions in these states (all when empty), newest first. */
export async function listSessions(states: SessionState[], signal: AbortSignal): Promise<Session[]> {
  const out: Session[] = [];
  let pageToken = "";
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await api.processing.listSessions(
      { states, pageSize: PAGE, pageToken },
      { signal, timeoutMs: 15_000 },
    );
    out.push(...res.sessions);
    pageToken = res.nextPageToken;
    if (!pageToken) break;
  }
  return out.sort((a, b) => millis(b.createdAt) - millis(a.createdAt));
}

/** Batches, newest first. */
export async function listBatches(signal: AbortSignal): Promise<Batch[]> {
  const out: Batch[] = [];
  let pageToken = "";
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await api.processing.listBatches(
      { pageSize: PAGE, pageToken },
      { signal, timeoutMs: 15_000 },
    );
    out.push(...res.batches);
    pageToken = res.nextPageToken;
    if (!pageToken) break;
  }
  return out.sort((a, b) => millis(b.createdAt) - millis(a.createdAt));
}
