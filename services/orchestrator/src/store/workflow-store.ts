import type { WorkflowDefinition } from "../workflows/workflow-definition.js";

export interface StoredWorkflow {
  readonly definition: WorkflowDefinition;
  readonly version: number;
  readonly deleted: boolean;
}

/** User-defined workflows, one row per version, and per-workflow usage counts (SQLite or PostgreSQL). */
export interface WorkflowStore {
  /** Adds a version; (id, version) is the primary key, so two writers cannot both make the same version. */
  insert(definition: WorkflowDefinition, version: number): Promise<void>;
  all(): Promise<StoredWorkflow[]>;
  /** Hides every version from new submits; the rows stay for sessions that already run one. */
  markDeleted(id: string): Promise<void>;
  recordUse(id: string): Promise<void>;
  usage(): Promise<Map<string, number>>;
}
