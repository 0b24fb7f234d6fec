import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { counter, gauge, histogram } from "@dmesh/runtime";
import { DEFAULT_TENANT } from "./sessions/tenant.js";

/** The orchestrator's own metrics (`dmesh_` prefix, base units, labels from small fixed sets). */

export const workflowStepSeconds = histogram({
  name: "dmesh_workflow_step_seconds",
  help: "Time one step of a session's workflow took, retries included, by the step's operation.",
  labelNames: ["operation"],
});

export const replicaRetries = counter({
  name: "dmesh_replica_retries_total",
  help: "Calls to a domain service made again after a transient failure, by domain.",
  labelNames: ["domain"],
});

export const replicaFailovers = counter({
  name: "dmesh_replica_failovers_total",
  help: "Retries that went to another replica than the one that failed, by domain.",
  labelNames: ["domain"],
});

export const storeCommitSeconds = histogram({
  name: "dmesh_store_commit_seconds",
  help: "Time one group commit of the state store took to reach the disk (fdatasync of its log).",
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
});

const STATES = [
  SessionState.QUEUED,
  SessionState.RUNNING,
  SessionState.PAUSED,
  SessionState.COMPLETED,
  SessionState.FAILED,
  SessionState.CANCELLED,
];

/** Rows of a session count: state, tenant, how many. */
export type SessionCounts = () => Promise<Iterable<{ state: SessionState; tenant: string; count: number }>>;

let sessionCounts: SessionCounts | undefined;

gauge({
  name: "dmesh_sessions",
  help: "Sessions stored, by state and tenant.",
  labelNames: ["state", "tenant"],
  async collect() {
    if (!sessionCounts) return;
    const counts = await sessionCounts();
    this.reset();
    // Every state is a series from the start, so that rates and alerts have something to read.
    for (const state of STATES) this.set({ state: stateName(state), tenant: DEFAULT_TENANT }, 0);
    for (const { state, tenant, count } of counts) this.inc({ state: stateName(state), tenant }, count);
  },
});

/** Where `dmesh_sessions` reads its counts at each scrape (the session store). */
export function countSessionsWith(counts: SessionCounts): void {
  sessionCounts = counts;
}

function stateName(state: SessionState): string {
  return (SessionState[state] ?? "unspecified").toLowerCase();
}

let inFlight: (() => number) | undefined;

gauge({
  name: "dmesh_orchestrator_sessions_in_flight",
  help: "Sessions this orchestrator replica is running or holds queued (the HPA of several replicas scales on it).",
  collect() {
    this.set(inFlight?.() ?? 0);
  },
});

/** Where `dmesh_orchestrator_sessions_in_flight` reads this replica's count at each scrape. */
export function countInFlightWith(count: () => number): void {
  inFlight = count;
}
