import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { createGrpcTransport, type GrpcTransport, type Logger, UnavailableError } from "@dmesh/runtime";

/** One replica of a domain service: its clients, what it is running for us, and whether it answers. */
export interface Replica<S extends DescService> {
  readonly address: string;
  readonly client: Client<S>;
  readonly health: Client<typeof Health>;
  readonly transport: GrpcTransport;
  inFlight: number;
  healthy: boolean;
  lastError: string;
  latencyMs: number;
  /** Work the replica itself reports (running + queued, from every orchestrator), at the last health check. */
  reportedLoad: number;
  /** Models the replica reports loaded (warm), at the last health check. */
  warm: readonly string[];
}

/** What a replica says about itself beyond health: its own queue and its warm models. */
export type Telemetry<S extends DescService> = (
  replica: Replica<S>,
  timeoutMs: number,
) => Promise<{ load: number; warm: readonly string[] }>;

/**
 * The replicas of one domain service. Work goes to the healthy replica with the least work: our calls in
 * flight plus the queue it reports (other orchestrators' work included), a replica with the wanted model warm
 * winning ties; a replica that fails its health check gets nothing until it passes again.
 */
export class ReplicaPool<S extends DescService> {
  private readonly replicas = new Map<string, Replica<S>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly domain: string,
    private readonly service: S,
    addresses: string[],
    private readonly logger: Logger,
    private readonly maxMessageBytes: number,
    private readonly telemetry?: Telemetry<S>,
  ) {
    this.setAddresses(addresses);
  }

  /** Replaces the replica set (static list or DNS refresh), keeping the clients of addresses that stay. */
  setAddresses(addresses: string[]): void {
    for (const [address, replica] of this.replicas) {
      if (!addresses.includes(address)) {
        replica.transport.close();
        this.replicas.delete(address);
      }
    }
    for (const address of addresses) {
      if (this.replicas.has(address)) continue;
      const transport = createGrpcTransport({ address, maxMessageBytes: this.maxMessageBytes });
      this.replicas.set(address, {
        address,
        transport,
        client: createClient(this.service, transport),
        health: createClient(Health, transport),
        inFlight: 0,
        healthy: true,
        lastError: "",
        latencyMs: 0,
        reportedLoad: 0,
        warm: [],
      });
    }
  }

  all(): Replica<S>[] {
    return [...this.replicas.values()];
  }

  /**
   * The least-loaded replica, preferring healthy ones not in `avoid` (e.g. the replica that just failed).
   * When none is healthy it still returns one: the call then fails with the real reason (or succeeds, if
   * the replica came back before its next health check), and the caller's retry policy decides.
   */
  pick(avoid: ReadonlySet<string> = new Set(), warmModel = ""): Replica<S> {
    const all = this.all();
    const healthy = all.filter((r) => r.healthy);
    const preferred = healthy.filter((r) => !avoid.has(r.address));
    const candidates = preferred.length > 0 ? preferred : healthy.length > 0 ? healthy : all;
    if (candidates.length === 0)
      throw new UnavailableError(`no ${this.domain} replica is configured or resolved`);
    // A cold replica costs a model load: it wins only when it has a whole request less to do.
    const cost = (r: Replica<S>) =>
      r.inFlight + r.reportedLoad + (warmModel && !r.warm.includes(warmModel) ? 0.5 : 0);
    return candidates.reduce((best, r) => (cost(r) < cost(best) ? r : best));
  }

  /** Whether a healthy replica outside `avoid` exists, i.e. a retry can go elsewhere at once. */
  hasHealthy(avoid: ReadonlySet<string> = new Set()): boolean {
    return this.all().some((r) => r.healthy && !avoid.has(r.address));
  }

  async checkHealth(timeoutMs = 2000): Promise<void> {
    await Promise.all(
      this.all().map(async (r) => {
        const started = performance.now();
        try {
          const res = await r.health.check({ service: "" }, { timeoutMs });
          r.latencyMs = performance.now() - started;
          const healthy = res.status === Serving.SERVING;
          if (healthy !== r.healthy)
            this.logger.info({ replica: r.address, healthy }, `${this.domain} replica health changed`);
          r.healthy = healthy;
          r.lastError = healthy ? "" : "NOT_SERVING";
          if (healthy && this.telemetry) {
            const t = await this.telemetry(r, timeoutMs).catch(() => undefined);
            // Its report counts our own calls too; those are already in inFlight.
            if (t) {
              r.reportedLoad = Math.max(0, t.load - r.inFlight);
              r.warm = t.warm;
            }
          }
        } catch (err) {
          if (r.healthy)
            this.logger.warn({ replica: r.address, err: String(err) }, `${this.domain} replica unreachable`);
          r.healthy = false;
          r.lastError = String((err as Error).message ?? err);
        }
      }),
    );
  }

  /** Marks a replica down at once after a transport failure; the next health check may bring it back. */
  markDown(address: string, reason: string): void {
    const r = this.replicas.get(address);
    if (r?.healthy) this.logger.warn({ replica: address, reason }, `${this.domain} replica marked down`);
    if (r) {
      r.healthy = false;
      r.lastError = reason;
    }
  }

  startHealthChecks(intervalMs: number): void {
    this.timer = setInterval(() => void this.checkHealth(), intervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    for (const r of this.replicas.values()) r.transport.close();
  }
}
