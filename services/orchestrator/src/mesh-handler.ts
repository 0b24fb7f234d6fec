import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, createClient, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import type { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import {
  type CleanupRequest,
  type InstructorStatus,
  type InstructorStatusSchema,
  MeshEventKind,
  type MeshService,
  type WatchMeshEventsRequest,
} from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import {
  type Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { callerOf, InvalidArgumentError, type Logger, scopeFrom, tenantOf } from "@dmesh/runtime";
import { audit } from "./audit-log.js";
import type { ReplicaPool } from "./mesh/replica-pool.js";
import type { MeshEventHub, WatchScope } from "./mesh-events/mesh-event-hub.js";
import type { SessionManager } from "./sessions/session-manager.js";
import type { ArtifactStore } from "./store/artifact-store.js";
import type { SessionStore } from "./store/session-store.js";

type Status = MessageInitShape<typeof InstructorStatusSchema>;

/** Status of every instructor and coordinated cleanup across them. */
export class MeshHandler implements ServiceImpl<typeof MeshService> {
  constructor(
    private readonly inference: ReplicaPool<typeof InferenceService>,
    private readonly postprocess: ReplicaPool<typeof PostprocessService>,
    private readonly device: ReplicaPool<typeof DeviceService> | undefined,
    private readonly sessions: SessionManager,
    private readonly sessionStore: SessionStore,
    private readonly artifacts: ArtifactStore,
    private readonly logger: Logger,
    private readonly meshEvents?: MeshEventHub,
  ) {}

  async *watchMeshEvents(req: WatchMeshEventsRequest, ctx: HandlerContext) {
    const kinds = new Set<MeshEventKind>();
    for (const [i, kind] of req.kinds.entries()) {
      if (kind === MeshEventKind.UNSPECIFIED || MeshEventKind[kind] === undefined)
        throw new InvalidArgumentError(`kinds[${i}]`, `is not a mesh event kind (got ${kind})`);
      kinds.add(kind);
    }
    if (!this.meshEvents) return;
    // An admin (or anyone while keys are off) sees every tenant's sessions and batches; others their own.
    const caller = callerOf(ctx);
    const scope: WatchScope = caller.admin ? {} : { tenant: caller.tenant };
    for await (const event of this.meshEvents.watch(kinds, scope, ctx.signal)) yield { event };
  }

  async getMeshStatus(_req: unknown, ctx: HandlerContext) {
    const opts = { signal: ctx.signal, timeoutMs: 2000 };
    const probe = async (
      domain: string,
      replica: { address: string; health: Client<typeof Health> },
      extra: (s: Status) => Promise<void>,
    ) => {
      const status: Status = { domain, address: replica.address };
      const started = performance.now();
      try {
        const res = await replica.health.check({ service: "" }, opts);
        status.health = Serving[res.status];
        status.latencyMs = performance.now() - started;
        await extra(status);
      } catch (err) {
        status.health = status.health || "UNREACHABLE";
        status.error = (err as Error).message;
      }
      return status;
    };
    const instructors: Status[] = await Promise.all([
      ...this.inference.all().map((r) =>
        probe("inference", r, async (s) => {
          const q = await r.client.getQueue({}, opts);
          s.queueRunning = q.running;
          s.queueQueued = q.queued;
          s.warmModels = q.loadedModels;
          s.deviceId = q.deviceMemory?.deviceId;
          s.deviceMemoryFreeBytes = q.deviceMemory?.freeBytes;
          s.deviceMemoryTotalBytes = q.deviceMemory?.totalBytes;
          s.deviceMemoryLeasedBytes = q.deviceMemory?.leasedBytes;
        }),
      ),
      ...this.postprocess.all().map((r) => probe("postprocess", r, async () => {})),
      ...(this.device?.all() ?? []).map((r) =>
        probe("device", r, async (s) => {
          const { devices } = await r.client.listDevices({}, opts);
          s.deviceMemoryFreeBytes = devices.reduce((n, d) => n + d.memoryFreeBytes, 0n);
          s.deviceMemoryTotalBytes = devices.reduce((n, d) => n + d.memoryTotalBytes, 0n);
          s.deviceMemoryLeasedBytes = devices.reduce((n, d) => n + d.memoryLeasedBytes, 0n);
        }),
      ),
    ]);
    const counts = this.sessions.counts();
    return {
      instructors: instructors as InstructorStatus[],
      sessionsQueued: counts.queued,
      sessionsRunning: counts.running,
    };
  }

  async cleanup(req: CleanupRequest, ctx: HandlerContext) {
    if (req.unloadIdleSeconds < 0) throw new InvalidArgumentError("unload_idle_seconds", "must be >= 0");
    if (req.pruneSessionsOlderThanSeconds < 0)
      throw new InvalidArgumentError("prune_sessions_older_than_seconds", "must be >= 0");
    const unloaded: string[] = [];
    if (req.unloadIdleSeconds > 0) {
      for (const r of this.inference.all()) {
        const models = createClient(ModelService, r.transport);
        try {
          const list = await models.listModels({}, { signal: ctx.signal, timeoutMs: 5000 });
          for (const m of list.models) {
            const idleMs = m.lastUsed ? Date.now() - Number(m.lastUsed.seconds) * 1000 : 0;
            if (m.loaded && idleMs >= req.unloadIdleSeconds * 1000) {
              if (!req.dryRun) {
                await models.unloadModel({ id: m.id }, { signal: ctx.signal, timeoutMs: 5000 });
                audit(
                  scopeFrom(ctx, this.logger).logger,
                  tenantOf(ctx),
                  "model.unload",
                  `${r.address}/${m.id}`,
                );
              }
              unloaded.push(`${r.address}/${m.id}`);
            }
          }
        } catch (err) {
          this.logger.warn({ replica: r.address, err: String(err) }, "cleanup could not reach replica");
        }
      }
    }
    let sessionsPruned = 0;
    let artifactsPruned = 0;
    let bytesFreed = 0n;
    if (req.pruneSessionsOlderThanSeconds > 0) {
      // Every tenant's: Cleanup is for admins (the auth interceptor refuses anyone else).
      const finished = await this.sessionStore.finishedBefore(
        Date.now() - req.pruneSessionsOlderThanSeconds * 1000,
      );
      const log = scopeFrom(ctx, this.logger).logger;
      for (const { id, tenant } of finished) {
        const artifactIds = await this.artifacts.idsOfSession(id);
        sessionsPruned++;
        artifactsPruned += artifactIds.length;
        if (req.dryRun) continue;
        bytesFreed += BigInt(await this.sessions.delete(id, tenant));
        audit(log, tenantOf(ctx), "session.delete (cleanup)", `${tenant}/${id}`);
      }
    }
    await this.sessions.durable();
    return { unloadedModels: unloaded, sessionsPruned, artifactsPruned, bytesFreed };
  }
}
