import type { ArtifactIndex } from "../artifact-store.js";
import type { PgDatabase } from "./pg-database.js";
import { bytea } from "./pg-values.js";

/** Artifact rows in PostgreSQL; a session's are written in call order (keyed by the session's id). */
export class PgArtifactIndex implements ArtifactIndex {
  constructor(private readonly db: PgDatabase) {}

  async refs(id: string): Promise<number> {
    const rows = await this.db.read<{ n: string }>(
      "all",
      "SELECT COUNT(*) AS n FROM artifacts WHERE id = $1",
      [id],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async idAt(sessionId: string, imageIndex: number): Promise<string | undefined> {
    const rows = await this.db.read<{ id: string }>(
      [sessionId],
      "SELECT id FROM artifacts WHERE session_id = $1 AND image_index = $2",
      [sessionId, imageIndex],
    );
    return rows[0]?.id;
  }

  async put(row: {
    id: string;
    tenant: string;
    sessionId: string;
    imageIndex: number;
    data: Uint8Array;
  }): Promise<void> {
    const args = [row.id, row.tenant, row.sessionId, row.imageIndex, Date.now(), bytea(row.data)];
    await this.db.write(row.sessionId, (q) =>
      q.query(
        `INSERT INTO artifacts (id, tenant, session_id, image_index, created_at, data) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (session_id, image_index)
         DO UPDATE SET id = excluded.id, tenant = excluded.tenant, created_at = excluded.created_at, data = excluded.data`,
        args,
      ),
    );
  }

  async byId(id: string, tenant: string): Promise<Uint8Array | undefined> {
    const rows = await this.db.read<{ data: Buffer }>(
      [],
      "SELECT data FROM artifacts WHERE id = $1 AND tenant = $2 LIMIT 1",
      [id, tenant],
    );
    return rows[0]?.data;
  }

  async bySession(sessionId: string, tenant: string): Promise<Uint8Array[]> {
    const rows = await this.db.read<{ data: Buffer }>(
      [sessionId],
      "SELECT data FROM artifacts WHERE session_id = $1 AND tenant = $2 ORDER BY image_index",
      [sessionId, tenant],
    );
    return rows.map((r) => r.data);
  }

  async removeOfTenant(id: string, tenant: string): Promise<string[]> {
    const { rows } = await this.db.pool.query<{ session_id: string }>(
      "DELETE FROM artifacts WHERE id = $1 AND tenant = $2 RETURNING session_id",
      [id, tenant],
    );
    return rows.map((r) => r.session_id);
  }

  async idsOfSession(sessionId: string): Promise<string[]> {
    const rows = await this.db.read<{ id: string }>(
      [sessionId],
      "SELECT DISTINCT id FROM artifacts WHERE session_id = $1",
      [sessionId],
    );
    return rows.map((r) => r.id);
  }
}
