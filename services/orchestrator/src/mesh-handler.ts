import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import type { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import {
  type CleanupRequest,
  type InstructorStatus,
  MeshEventKind,
  type MeshService,
  type WatchMeshEventsRequest,
} from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { callerOf, InvalidArgumentError, type Logger, scopeFrom, tenantOf } from "@dmesh/runtime";
import type { ReplicaPool } from "./clients/replica-pool.js";
import { MeshCleanup } from "./mesh/mesh-cleanup.js";
import { probeInstructors } from "./mesh/mesh-status.js";
import type { MeshEventHub, WatchScope } from "./mesh-events/mesh-event-hub.js";
import type { SessionManager } from "./sessions/session-manager.js";
import type { ArtifactStore } from "./store/artifact-store.js";
import type { SessionStore } from "./store/session-store.js";

/** MeshService: mesh events, the status of every instructor, and coordinated cleanup (mesh/). */
export class MeshHandler implements ServiceImpl<typeof MeshService> {
  private readonly pools: Parameters<typeof probeInstructors>[0];
  private readonly cleaner: MeshCleanup;

  constructor(
    inference: ReplicaPool<typeof InferenceService>,
    postprocess: ReplicaPool<typeof PostprocessService>,
    device: ReplicaPool<typeof DeviceService> | undefined,
    private readonly sessions: SessionManager,
    sessionStore: SessionStore,
    artifacts: ArtifactStore,
    private readonly logger: Logger,
    private readonly meshEvents?: MeshEventHub,
  ) {
    this.pools = { inference, postprocess, device };
    this.cleaner = new MeshCleanup(inference, sessions, sessionStore, artifacts, logger);
  }

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
    const instructors = await probeInstructors(this.pools, ctx.signal);
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
    // Every tenant's sessions: Cleanup is for admins (the auth interceptor refuses anyone else).
    const caller = { logger: scopeFrom(ctx, this.logger).logger, tenant: tenantOf(ctx) };
    const unloadedModels =
      req.unloadIdleSeconds > 0
        ? await this.cleaner.unloadIdleModels(req.unloadIdleSeconds, req.dryRun, caller, ctx.signal)
        : [];
    const pruned =
      req.pruneSessionsOlderThanSeconds > 0
        ? await this.cleaner.pruneSessions(req.pruneSessionsOlderThanSeconds, req.dryRun, caller)
        : { sessionsPruned: 0, artifactsPruned: 0, bytesFreed: 0n };
    return { unloadedModels, ...pruned };
  }
}
