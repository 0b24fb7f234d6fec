import type { WorkflowDefinition } from "../../workflows/workflow-definition.js";
import type { StoredWorkflow, WorkflowStore } from "../workflow-store.js";
import type { PgDatabase } from "./pg-database.js";

// Writes of every workflow row are ordered under one key: a catalog change is rare, and reads see them all.
const KEY = "workflows";

/** The workflow store in PostgreSQL. */
export class PgWorkflowStore implements WorkflowStore {
  constructor(private readonly db: PgDatabase) {}

  async insert(definition: WorkflowDefinition, version: number): Promise<void> {
    const args = [definition.id, version, Date.now(), JSON.stringify(definition)];
    await this.db.write(KEY, (q) =>
      q.query("INSERT INTO workflows (id, version, created_at, definition) VALUES ($1, $2, $3, $4)", args),
    );
  }

  async all(): Promise<StoredWorkflow[]> {
    const rows = await this.db.read<{ version: number; deleted: boolean; definition: string }>(
      [KEY],
      "SELECT version, deleted, definition FROM workflows ORDER BY id, version",
    );
    return rows.map((r) => ({
      definition: JSON.parse(r.definition) as WorkflowDefinition,
      version: r.version,
      deleted: r.deleted,
    }));
  }

  async markDeleted(id: string): Promise<void> {
    await this.db.write(KEY, (q) => q.query("UPDATE workflows SET deleted = TRUE WHERE id = $1", [id]));
  }

  async recordUse(id: string): Promise<void> {
    await this.db.write(`${KEY}.usage`, (q) =>
      q.query(
        "INSERT INTO workflow_usage (id, sessions) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET sessions = workflow_usage.sessions + 1",
        [id],
      ),
    );
  }

  async usage(): Promise<Map<string, number>> {
    // BIGINT arrives as a string.
    const rows = await this.db.read<{ id: string; sessions: string }>(
      [`${KEY}.usage`],
      "SELECT id, sessions FROM workflow_usage",
    );
    return new Map(rows.map((r) => [r.id, Number(r.sessions)]));
  }
}
