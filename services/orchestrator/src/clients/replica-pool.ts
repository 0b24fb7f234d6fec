import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { type ClientTls, createGrpcTransport } from "@dmesh/runtime";
import { UnavailableError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { type DeviceMemory, usableBytes } from "../mesh/device-memory.js";
import { AbortableTransport } from "./abortable-transport.js";

/** How long health checks may fail to reach a replica before its calls in flight are aborted, by default. */
export const DEFAULT_LOST_AFTER_MS = 15_000;

/** One replica of a domain service: its clients, what it is running for us, and whether it answers. */
export interface Replica<S extends DescService> {
  readonly address: string;
  readonly client: Client<S>;
  readonly health: Client<typeof Health>;
  readonly transport: AbortableTransport;
  inFlight: number;
  /** Our requests placed on it (`pin`) that have not started yet. */
  pinned: number;
  healthy: boolean;
  lastError: string;
  latencyMs: number;
  /** Work the replica itself reports (running + queued, from every orchestrator), at the last health check. */
  reportedLoad: number;
  /** Models the replica reports loaded (warm), at the last health check. */
  warm: readonly string[];
  /** The memory of the device it runs on, at the last health check; undefined where it does not say. */
  memory: DeviceMemory | undefined;
  /** Images one UNet run of it may denoise together; 0 = not reported. */
  maxUnetBatch: number;
  /** Requests it runs at once; 0 = not reported. */
  maxConcurrent: number;
  /** When the first of the health checks that have not reached it since was sent (performance.now()). */
  unreachableSince: number | undefined;
}

/** What a replica says about itself beyond health. */
export interface ReplicaReport {
  /** Work it has (running + queued, from every orchestrator). */
  load: number;
  /** Models loaded (warm). */
  warm: readonly string[];
  memory?: DeviceMemory | undefined;
  maxUnetBatch?: number;
  maxConcurrent?: number;
}

export type Telemetry<S extends DescService> = (
  replica: Replica<S>,
  timeoutMs: number,
) => Promise<ReplicaReport>;

/** What a call needs of the replica it goes to. */
export interface CallNeed {
  /** Device memory one image of it takes (the activation estimate); replicas without that much free lose. */
  bytesPerImage?: number;
  /** The request's id, for a placement made beforehand with `pin`. */
  requestId?: string;
}

/** Where a group of compatible requests goes, and how much of it that replica takes at once. */
export interface GroupPlacement {
  readonly address: string;
  /** Images it can denoise together: its UNet batch limit, capped by what its device's free memory holds. */
  readonly images: number;
  /** Requests it runs at once. */
  readonly requests: number;
}

/**
 * The replicas of one domain service. Work goes to the healthy replica with the least work: our calls in
 * flight and placed there plus the queue it reports (other orchestrators' work included), among those whose
 * device has free memory for the call where any has, a replica with the wanted model warm winning ties. A
 * replica that fails its health check gets nothing until it passes again; one that health checks cannot reach
 * for `lostAfterMs` has its calls in flight aborted (UNAVAILABLE), so that they are retried elsewhere.
 */
export class ReplicaPool<S extends DescService> {
  private readonly replicas = new Map<string, Replica<S>>();
  private readonly pins = new Map<string, Replica<S>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly domain: string,
    private readonly service: S,
    addresses: string[],
    private readonly logger: Logger,
    private readonly maxMessageBytes: number,
    private readonly telemetry?: Telemetry<S>,
    private readonly lostAfterMs = DEFAULT_LOST_AFTER_MS,
    private readonly tls?: ClientTls,
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
      const grpc = createGrpcTransport({
        address,
        maxMessageBytes: this.maxMessageBytes,
        ...(this.tls ? { tls: this.tls } : {}),
      });
      const transport = new AbortableTransport(grpc);
      this.replicas.set(address, {
        address,
        transport,
        client: createClient(this.service, transport),
        // Health checks stay outside what a loss aborts: they are how it is noticed, and have a deadline.
        health: createClient(Health, grpc),
        inFlight: 0,
        pinned: 0,
        healthy: true,
        lastError: "",
        latencyMs: 0,
        reportedLoad: 0,
        warm: [],
        memory: undefined,
        maxUnetBatch: 0,
        maxConcurrent: 0,
        unreachableSince: undefined,
      });
    }
  }

  all(): Replica<S>[] {
    return [...this.replicas.values()];
  }

  /**
   * The replica placed for `need.requestId` (`pin`) while it is healthy and not in `avoid`; else the least
   * loaded, preferring healthy ones not in `avoid` (e.g. the replica that just failed) and, among those, ones
   * with device memory free for `need.bytesPerImage`. When none is healthy it still returns one: the call then
   * fails with the real reason (or succeeds, if the replica came back before its next health check), and the
   * caller's retry policy decides; likewise when none reports room, since the estimate is rough.
   */
  pick(avoid: ReadonlySet<string> = new Set(), warmModel = "", need: CallNeed = {}): Replica<S> {
    const placed = need.requestId ? this.pins.get(need.requestId) : undefined;
    if (placed && need.requestId) {
      this.unpin(need.requestId);
      if (placed.healthy && !avoid.has(placed.address) && this.replicas.get(placed.address) === placed)
        return placed;
    }
    const all = this.all();
    const healthy = all.filter((r) => r.healthy);
    const preferred = healthy.filter((r) => !avoid.has(r.address));
    const candidates = preferred.length > 0 ? preferred : healthy.length > 0 ? healthy : all;
    if (candidates.length === 0)
      throw new UnavailableError(`no ${this.domain} replica is configured or resolved`);
    const bytes = need.bytesPerImage ?? 0;
    const roomy = candidates.filter((r) => !r.memory || usableBytes(r.memory) >= bytes);
    // A cold replica costs a model load: it wins only when it has a whole request less to do.
    const cost = (r: Replica<S>) =>
      r.inFlight + r.pinned + r.reportedLoad + (warmModel && !r.warm.includes(warmModel) ? 0.5 : 0);
    return (roomy.length > 0 ? roomy : candidates).reduce((best, r) => (cost(r) < cost(best) ? r : best));
  }

  /**
   * Where a group of compatible requests should go (`pick`'s choice) and how much of it that replica takes at
   * once: its UNet batch limit in images, capped by `maxImages` and by how many images of `bytesPerImage` its
   * device's free memory holds (at least one), and its concurrency in requests.
   */
  placeGroup(bytesPerImage: number, warmModel: string, maxImages: number): GroupPlacement {
    const replica = this.pick(new Set(), warmModel, { bytesPerImage });
    const fit = replica.memory
      ? Math.floor(usableBytes(replica.memory) / Math.max(1, bytesPerImage))
      : Number.POSITIVE_INFINITY;
    const images = Math.max(1, Math.min(maxImages, replica.maxUnetBatch || 1, fit));
    return { address: replica.address, images, requests: Math.min(images, replica.maxConcurrent || 1) };
  }

  /** Places request `requestId` on the replica at `address`: its first `pick` returns it, if still healthy. */
  pin(requestId: string, address: string): void {
    const replica = this.replicas.get(address);
    if (!replica || this.pins.has(requestId)) return;
    this.pins.set(requestId, replica);
    replica.pinned++;
  }

  /** Forgets a placement not used (its request finished or was cancelled before it started). */
  unpin(requestId: string): void {
    const replica = this.pins.get(requestId);
    if (!replica) return;
    this.pins.delete(requestId);
    replica.pinned--;
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
          r.unreachableSince = undefined;
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
              r.memory = t.memory;
              r.maxUnetBatch = t.maxUnetBatch ?? 0;
              r.maxConcurrent = t.maxConcurrent ?? 0;
            }
          }
        } catch (err) {
          if (r.healthy)
            this.logger.warn({ replica: r.address, err: String(err) }, `${this.domain} replica unreachable`);
          r.healthy = false;
          r.lastError = String((err as Error).message ?? err);
          this.abandonIfLost(r, started);
        }
      }),
    );
  }

  /**
   * Aborts the calls in flight to a replica that health checks have not reached for `lostAfterMs` (a cut link
   * or a frozen process): their callers retry elsewhere instead of waiting for keepalive. A replica answering
   * NOT_SERVING is draining and keeps its calls. Model runs leave an inference process answering (they run
   * on worker threads); `lostAfterMs` stays above the longest JavaScript work that still holds its loop.
   */
  private abandonIfLost(r: Replica<S>, checkStarted: number): void {
    r.unreachableSince ??= checkStarted;
    const silentMs = Math.round(performance.now() - r.unreachableSince);
    if (silentMs < this.lostAfterMs) return;
    const reason = `${this.domain} replica ${r.address} unreachable for ${silentMs} ms`;
    const aborted = r.transport.abortAll(new ConnectError(reason, Code.Unavailable));
    if (aborted > 0)
      this.logger.warn({ replica: r.address, aborted, silentMs }, "calls to a lost replica aborted");
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
