import type { WorkflowDefinition } from "../workflows/workflow-definition.js";
import type { Db } from "./database.js";

export interface StoredWorkflow {
  readonly definition: WorkflowDefinition;
  readonly version: number;
  readonly deleted: boolean;
}

/**
 * User-defined workflows, one row per version, and per-workflow usage counts. Async like the other stores'
 * interfaces, so that another database can sit behind it.
 */
export class WorkflowStore {
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

  /** Adds a version; (id, version) is the primary key, so two writers cannot both make the same version. */
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

  /** Hides every version from new submits; the rows stay for sessions that already run one. */
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
