import { NotFoundError, quote } from "@dmesh/runtime/errors";
import type { SessionManager } from "../sessions/session-manager.js";
import type { ArtifactStore } from "../store/artifact-store.js";

/**
 * Deletes one tenant's artifact: its references go, the sessions that listed it stop listing it (the rest of
 * them stays), and the bytes go once no reference remains (the same image made by another tenant stays
 * theirs). Another tenant's artifact answers as a missing one.
 */
export class ArtifactDeletion {
  constructor(
    private readonly artifacts: Pick<ArtifactStore, "removeReferences" | "removeUnreferenced">,
    private readonly sessions: Pick<SessionManager, "forgetArtifact" | "durable">,
  ) {}

  /** Returns the bytes freed: 0 while another reference keeps the file. */
  async delete(id: string, tenant: string): Promise<number> {
    const sessionIds = await this.artifacts.removeReferences(id, tenant);
    if (sessionIds.length === 0) throw new NotFoundError("artifact_id", `no artifact ${quote(id)}`);
    for (const sessionId of sessionIds) await this.sessions.forgetArtifact(sessionId, id);
    // The file goes once the rows' deletion is on disk: a crash never leaves a row without its file.
    await this.sessions.durable();
    return this.artifacts.removeUnreferenced([id]);
  }
}
