import type { ArtifactIndex } from "./artifact-store.js";
import type { Db } from "./database.js";

/** Artifact rows in the embedded SQLite file: each write is applied before its call returns. */
export class SqliteArtifactIndex implements ArtifactIndex {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare(
        "INSERT OR REPLACE INTO artifacts (id, tenant, session_id, image_index, created_at, data) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      byId: db.prepare("SELECT data FROM artifacts WHERE id = ? AND tenant = ? LIMIT 1"),
      bySession: db.prepare(
        "SELECT data FROM artifacts WHERE session_id = ? AND tenant = ? ORDER BY image_index",
      ),
      refs: db.prepare("SELECT COUNT(*) AS n FROM artifacts WHERE id = ?"),
      idsOfSession: db.prepare("SELECT DISTINCT id FROM artifacts WHERE session_id = ?"),
      idAt: db.prepare("SELECT id FROM artifacts WHERE session_id = ? AND image_index = ?"),
      removeOfTenant: db.prepare("DELETE FROM artifacts WHERE id = ? AND tenant = ? RETURNING session_id"),
    };
  }

  async refs(id: string): Promise<number> {
    return (this.stmts.refs.get(id) as { n: number }).n;
  }

  async idAt(sessionId: string, imageIndex: number): Promise<string | undefined> {
    return (this.stmts.idAt.get(sessionId, imageIndex) as { id: string } | undefined)?.id;
  }

  async put(row: {
    id: string;
    tenant: string;
    sessionId: string;
    imageIndex: number;
    data: Uint8Array;
  }): Promise<void> {
    this.stmts.insert.run(row.id, row.tenant, row.sessionId, row.imageIndex, Date.now(), row.data);
  }

  async byId(id: string, tenant: string): Promise<Uint8Array | undefined> {
    return (this.stmts.byId.get(id, tenant) as { data: Buffer } | undefined)?.data;
  }

  async bySession(sessionId: string, tenant: string): Promise<Uint8Array[]> {
    return (this.stmts.bySession.all(sessionId, tenant) as { data: Buffer }[]).map((r) => r.data);
  }

  async removeOfTenant(id: string, tenant: string): Promise<string[]> {
    return (this.stmts.removeOfTenant.all(id, tenant) as { session_id: string }[]).map((r) => r.session_id);
  }

  async idsOfSession(sessionId: string): Promise<string[]> {
    return (this.stmts.idsOfSession.all(sessionId) as { id: string }[]).map((r) => r.id);
  }
}
