import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Health } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { HealthCheckResponse_ServingStatus as Status } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { NotFoundError, quote } from "./errors.js";

export { Status as ServingStatus };

/** Always SERVING while the process runs: Kubernetes liveness asks for this service name. */
export const LIVENESS = "liveness";

/**
 * Serving status per service name. "" is overall readiness: it starts NOT_SERVING and turns SERVING only
 * when the owner says the process is ready (a model loaded, dependencies reachable), and drops first on
 * shutdown so that load balancers stop sending before streams drain.
 */
export class HealthRegistry {
  private readonly statuses = new Map<string, Status>([
    ["", Status.NOT_SERVING],
    [LIVENESS, Status.SERVING],
  ]);
  private readonly listeners = new Set<() => void>();

  constructor(services: string[]) {
    for (const name of services) this.statuses.set(name, Status.NOT_SERVING);
  }

  /** Sets readiness for "" and every registered domain service at once. */
  setReady(ready: boolean): void {
    for (const name of this.statuses.keys()) {
      if (name !== LIVENESS) this.set(name, ready ? Status.SERVING : Status.NOT_SERVING);
    }
  }

  set(service: string, status: Status): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const listener of this.listeners) listener();
  }

  get(service: string): Status | undefined {
    return this.statuses.get(service);
  }

  get ready(): boolean {
    return this.statuses.get("") === Status.SERVING;
  }

  all(): Map<string, Status> {
    return new Map(this.statuses);
  }

  /** Resolves on the next change or when the signal aborts. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.listeners.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.listeners.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

export function createHealthService(registry: HealthRegistry): ServiceImpl<typeof Health> {
  return {
    check(req) {
      const status = registry.get(req.service);
      if (status === undefined) throw new NotFoundError("service", `unknown service ${quote(req.service)}`);
      return { status };
    },
    list() {
      const statuses: Record<string, { status: Status }> = {};
      for (const [name, status] of registry.all()) statuses[name] = { status };
      return { statuses };
    },
    async *watch(req, ctx: HandlerContext) {
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = registry.get(req.service) ?? Status.SERVICE_UNKNOWN;
        if (status !== last) {
          last = status;
          yield { status };
        }
        await registry.changed(ctx.signal);
      }
    },
  };
}
