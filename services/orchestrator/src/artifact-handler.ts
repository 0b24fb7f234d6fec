import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { InvalidArgumentError, type Logger, NotFoundError, quote, scopeFrom, tenantOf } from "@dmesh/runtime";
import { requiredId } from "@dmesh/spec";
import type { ArtifactDeletion } from "./artifacts/artifact-deletion.js";
import { checkArtifactId } from "./artifacts/artifact-id.js";
import { audit } from "./audit-log.js";
import type { ArtifactStore } from "./store/artifact-store.js";

const DEFAULT_CHUNK = 1024 * 1024;

/**
 * Serves stored images: their info first, then their bytes in chunks no larger than asked. A caller sees the
 * references its tenant owns; the same bytes made by another tenant answer as missing.
 */
export class ArtifactHandler implements ServiceImpl<typeof ArtifactService> {
  constructor(
    private readonly artifacts: ArtifactStore,
    private readonly deletion: ArtifactDeletion,
    private readonly logger: Logger,
  ) {}

  async *getArtifact(req: { artifactId: string; chunkBytes: number }, ctx: HandlerContext) {
    checkArtifactId(req.artifactId, "artifact_id");
    const chunkBytes = req.chunkBytes || DEFAULT_CHUNK;
    if (chunkBytes < 4096 || chunkBytes > 4 * 1024 * 1024) {
      throw new InvalidArgumentError("chunk_bytes", "must be in [4096, 4194304]");
    }
    const artifact = await this.artifacts.get(req.artifactId, tenantOf(ctx));
    if (!artifact) throw new NotFoundError("artifact_id", `no artifact ${quote(req.artifactId)}`);
    yield { artifact };
    for await (const chunk of this.artifacts.open(artifact.id, chunkBytes)) {
      if (ctx.signal.aborted) return;
      yield { chunk };
    }
  }

  async listArtifacts(req: { sessionId: string }, ctx: HandlerContext) {
    const sessionId = requiredId(req.sessionId, "session_id");
    return { artifacts: await this.artifacts.listBySession(sessionId, tenantOf(ctx)) };
  }

  async deleteArtifact(req: { artifactId: string }, ctx: HandlerContext) {
    const id = checkArtifactId(req.artifactId, "artifact_id");
    const tenant = tenantOf(ctx);
    await this.deletion.delete(id, tenant);
    audit(scopeFrom(ctx, this.logger).logger, tenant, "artifact.delete", id);
    return {};
  }
}
