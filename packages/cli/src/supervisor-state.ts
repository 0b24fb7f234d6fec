import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { SupervisedService } from "./service-supervisor.js";

/**
 * What `dmesh up` tells `dmesh status` about the services it supervises. A file beside the mesh's data, not
 * a field of the orchestrator's MeshStatus: restarts are a fact of this local supervisor (in Kubernetes the
 * kubelet counts them), and `status` reads them only for the mesh at the URL it asks.
 */
export interface SupervisorState {
  /** The orchestrator's URL. */
  readonly url: string;
  /** The `dmesh up` process. */
  readonly pid: number;
  readonly services: Readonly<Record<string, SupervisedService>>;
}

/** Under `dmesh up --data DIR` (default .dmesh). */
export const SUPERVISOR_STATE_FILE = "services.json";

export function writeSupervisorState(file: string, state: SupervisorState): void {
  mkdirSync(dirname(file), { recursive: true });
  // Renamed into place, so that a reader never sees half a file.
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

export function removeSupervisorState(file: string): void {
  rmSync(file, { force: true });
}

/** The state of the running `dmesh up` serving `url`; none if it serves another URL or is gone. */
export function readSupervisorState(file: string, url: string): SupervisorState | undefined {
  let state: SupervisorState;
  try {
    state = JSON.parse(readFileSync(file, "utf8")) as SupervisorState;
  } catch {
    return undefined;
  }
  const bare = (u: string) => u.replace(/\/+$/, "");
  if (typeof state.url !== "string" || bare(state.url) !== bare(url) || !isRunning(state.pid))
    return undefined;
  return state;
}

function isRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
