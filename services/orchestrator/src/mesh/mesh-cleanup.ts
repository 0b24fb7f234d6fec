import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import type { Logger } from "@dmesh/runtime/logger";
import { audit } from "../audit-log.js";
import { modelServiceOf } from "../clients/model-service.js";
import type { ReplicaPool } from "../clients/replica-pool.js";
import type { SessionManager } from "../sessions/session-manager.js";
import type { ArtifactStore } from "../store/artifact-store.js";
import type { SessionStore } from "../store/session-store.js";

/** Who asked for a cleanup: its audit lines carry the call's logger (request id) and tenant. */
export interface CleanupCaller {
  readonly logger: Logger;
  readonly tenant: string;
}

/** How long one replica may take to list or unload its models. */
const MODEL_CALL_TIMEOUT_MS = 5000;

/**
 * Coordinated cleanup across the mesh: models idle on inference replicas are unloaded, finished sessions
 * past an age are deleted with their artifacts. A dry run counts what it would do and does nothing; every
 * real action leaves an audit line.
 */
export class MeshCleanup {
  constructor(
    private readonly inference: ReplicaPool<typeof InferenceService>,
    private readonly sessions: SessionManager,
    private readonly sessionStore: SessionStore,
    private readonly artifacts: ArtifactStore,
    private readonly logger: Logger,
  ) {}

  /**
   * Unloads every loaded model unused for `idleSeconds` on every replica; returns them as "address/model".
   * A replica that cannot be reached is logged and skipped: cleanup does what it can.
   */
  async unloadIdleModels(
    idleSeconds: number,
    dryRun: boolean,
    caller: CleanupCaller,
    signal: AbortSignal,
  ): Promise<string[]> {
    const unloaded: string[] = [];
    const opts = { signal, timeoutMs: MODEL_CALL_TIMEOUT_MS };
    for (const r of this.inference.all()) {
      const models = modelServiceOf(r);
      try {
        const list = await models.listModels({}, opts);
        for (const m of list.models) {
          const idleMs = m.lastUsed ? Date.now() - Number(m.lastUsed.seconds) * 1000 : 0;
          if (!m.loaded || idleMs < idleSeconds * 1000) continue;
          if (!dryRun) {
            await models.unloadModel({ id: m.id }, opts);
            audit(caller.logger, caller.tenant, "model.unload", `${r.address}/${m.id}`);
          }
          unloaded.push(`${r.address}/${m.id}`);
        }
      } catch (err) {
        this.logger.warn({ replica: r.address, err: String(err) }, "cleanup could not reach replica");
      }
    }
    return unloaded;
  }

  /** Deletes every tenant's sessions finished more than `olderThanSeconds` ago, with their artifacts. */
  async pruneSessions(
    olderThanSeconds: number,
    dryRun: boolean,
    caller: CleanupCaller,
  ): Promise<{ sessionsPruned: number; artifactsPruned: number; bytesFreed: bigint }> {
    let sessionsPruned = 0;
    let artifactsPruned = 0;
    let bytesFreed = 0n;
    const finished = await this.sessionStore.finishedBefore(Date.now() - olderThanSeconds * 1000);
    for (const { id, tenant } of finished) {
      sessionsPruned++;
      artifactsPruned += (await this.artifacts.idsOfSession(id)).length;
      if (dryRun) continue;
      bytesFreed += BigInt(await this.sessions.delete(id, tenant));
      audit(caller.logger, caller.tenant, "session.delete (cleanup)", `${tenant}/${id}`);
    }
    await this.sessions.durable();
    return { sessionsPruned, artifactsPruned, bytesFreed };
  }
}
