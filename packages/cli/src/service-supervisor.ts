import type { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { type RunningMesh, SERVICES, type ServiceName } from "./mesh-launcher.js";

/** When a service that exited unasked is started again, and when the supervisor stops trying. */
export interface RestartPolicy {
  /** Wait before the first restart in a window; each further one waits `backoffCoefficient` times longer. */
  readonly initialIntervalMs: number;
  readonly backoffCoefficient: number;
  readonly maximumIntervalMs: number;
  /** Restarts of one service allowed within `windowMs`; its next exit in that window stops the mesh. */
  readonly maxRestarts: number;
  readonly windowMs: number;
}

/** Five restarts in a minute (0.5 + 1 + 2 + 4 + 8 s of backoff): a crash, not a crash loop. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialIntervalMs: 500,
  backoffCoefficient: 2,
  maximumIntervalMs: 10_000,
  maxRestarts: 5,
  windowMs: 60_000,
};

export interface SupervisedService {
  /** 0 while the service is being started again. */
  readonly pid: number;
  readonly restarts: number;
  /** How it last exited: an exit code or a signal name; "" if it never has. */
  readonly lastExit: string;
}

export interface SupervisorEvents {
  /** A service exited unasked and is started again after `delayMs`. */
  crashed?(name: ServiceName, exit: string, delayMs: number): void;
  restarted?(name: ServiceName, pid: number): void;
  /** Any change of a service's pid, restarts or last exit. */
  changed?(services: Readonly<Record<ServiceName, SupervisedService>>): void;
}

export interface ServiceSupervisor {
  /** Settles, saying why, when a service exited more often than the policy allows; the mesh is left running. */
  readonly gaveUp: Promise<string>;
  services(): Readonly<Record<ServiceName, SupervisedService>>;
  /** Stops restarting: exits from now on are the mesh being stopped. */
  stop(): void;
}

/**
 * Restarts the services of a mesh that exit while it runs, with a doubling backoff, on the ports and settings
 * they had; sessions in flight carry on through the orchestrator's retries and checkpoints. A service that
 * exits more than `maxRestarts` times within `windowMs` is a crash loop: the supervisor gives up.
 */
export function superviseMesh(
  mesh: RunningMesh,
  policy: RestartPolicy = DEFAULT_RESTART_POLICY,
  events: SupervisorEvents = {},
): ServiceSupervisor {
  const stopping = new AbortController();
  let giveUp: (reason: string) => void = () => {};
  const gaveUp = new Promise<string>((resolve) => {
    giveUp = resolve;
  });
  const services = Object.fromEntries(
    SERVICES.map((name) => [name, { pid: mesh.children[name].pid ?? 0, restarts: 0, lastExit: "" }]),
  ) as Record<ServiceName, SupervisedService>;
  const restartTimes = new Map<ServiceName, number[]>(SERVICES.map((name) => [name, []]));
  const update = (name: ServiceName, change: Partial<SupervisedService>) => {
    services[name] = { ...services[name], ...change };
    events.changed?.(services);
  };

  const watch = (name: ServiceName, child: ChildProcess) => {
    child.once("exit", () => void exited(name, describeExit(child) ?? "exit"));
  };

  const exited = async (name: ServiceName, exit: string): Promise<void> => {
    if (stopping.signal.aborted) return;
    const now = Date.now();
    const recent = (restartTimes.get(name) ?? []).filter((t) => now - t < policy.windowMs);
    if (recent.length >= policy.maxRestarts) {
      stopping.abort();
      update(name, { pid: 0, lastExit: exit });
      giveUp(
        `${name} exited (${exit}) ${recent.length + 1} times within ${policy.windowMs / 1000} s, ` +
          `after ${recent.length} restarts`,
      );
      return;
    }
    recent.push(now);
    restartTimes.set(name, recent);
    const delayMs = Math.min(
      policy.initialIntervalMs * policy.backoffCoefficient ** (recent.length - 1),
      policy.maximumIntervalMs,
    );
    update(name, { pid: 0, restarts: services[name].restarts + 1, lastExit: exit });
    events.crashed?.(name, exit, delayMs);
    try {
      await sleep(delayMs, undefined, { signal: stopping.signal });
    } catch {
      return; // stopped while waiting
    }
    let child: ChildProcess;
    try {
      child = await mesh.restart(name);
    } catch {
      // It exited, or hung, before it was ready: one more exit in the window.
      return exited(name, describeExit(mesh.children[name]) ?? "not ready");
    }
    if (stopping.signal.aborted) return; // the mesh's stop reaches it through mesh.children
    watch(name, child);
    update(name, { pid: child.pid ?? 0 });
    events.restarted?.(name, child.pid ?? 0);
  };

  for (const name of SERVICES) watch(name, mesh.children[name]);
  return {
    gaveUp,
    services: () => services,
    stop: () => stopping.abort(),
  };
}

/** "SIGKILL" or "code 1" for a process that has exited; undefined while it runs. */
function describeExit(child: ChildProcess): string | undefined {
  if (child.signalCode !== null) return child.signalCode;
  return child.exitCode === null ? undefined : `code ${child.exitCode}`;
}
