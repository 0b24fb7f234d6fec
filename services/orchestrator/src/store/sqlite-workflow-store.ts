import type { WorkflowDefinition } from "../workflows/workflow-definition.js";
import type { Db } from "./database.js";
import type { StoredWorkflow, WorkflowStore } from "./workflow-store.js";

/** The workflow store in the embedded SQLite file. */
export class SqliteWorkflowStore implements WorkflowStore {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare("INSERT INTO workflows (id, version, created_at, definition) VALUES (?, ?, ?, ?)"),
      all: db.prepare("SELECT version, deleted, definition FROM workflows ORDER BY id, version"),
      markDeleted: db.prepare("UPDATE workflows SET deleted = 1 WHERE id = ?"),
      use: db.prepare(
        "INSERT INTO workflow_usage (id, sessions) VALUES (?, 1) ON CONFLICT(id) DO UPDATE SET sessions = sessions + 1",
      ),
      usage: db.prepare("SELECT id, sessions FROM workflow_usage"),
    };
  }

  async insert(definition: WorkflowDefinition, version: number): Promise<void> {
    this.stmts.insert.run(definition.id, version, Date.now(), JSON.stringify(definition));
  }

  async all(): Promise<StoredWorkflow[]> {
    return (this.stmts.all.all() as { version: number; deleted: number; definition: string }[]).map((r) => ({
      definition: JSON.parse(r.definition) as WorkflowDefinition,
      version: r.version,
      deleted: r.deleted !== 0,
    }));
  }

  async markDeleted(id: string): Promise<void> {
    this.stmts.markDeleted.run(id);
  }

  async recordUse(id: string): Promise<void> {
    this.stmts.use.run(id);
  }

  async usage(): Promise<Map<string, number>> {
    const rows = this.stmts.usage.all() as { id: string; sessions: number }[];
    return new Map(rows.map((r) => [r.id, r.sessions]));
  }
}
