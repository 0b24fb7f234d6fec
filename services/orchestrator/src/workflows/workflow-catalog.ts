import { AlreadyExistsError, FailedPreconditionError, NotFoundError, quote } from "@dmesh/runtime/errors";
import type { WorkflowStore } from "../store/workflow-store.js";
import { type CompiledWorkflow, compileWorkflow } from "./validate-definition.js";
import type { WorkflowDefinition, WorkflowVersion } from "./workflow-definition.js";

export interface CatalogEntry extends WorkflowVersion {
  readonly compiled: CompiledWorkflow;
}

interface History {
  readonly versions: CatalogEntry[];
  deleted: boolean;
}

/**
 * The workflows this orchestrator runs: the built-ins (read-only, versioned with the code) and the stored
 * user-defined ones with every version, so that a session runs the version it was submitted with even after
 * an update or a delete. Every definition is compiled (checked and ordered) before it is kept.
 */
export class WorkflowCatalog {
  private readonly histories = new Map<string, History>();
  private readonly usage = new Map<string, number>();

  constructor(
    builtins: readonly WorkflowVersion[],
    private readonly store?: WorkflowStore,
  ) {
    for (const b of builtins) {
      this.histories.set(b.definition.id, {
        versions: [{ ...b, compiled: compileWorkflow(b.definition) }],
        deleted: false,
      });
    }
  }

  /** Reads the stored workflows and usage counts; again, adds only the versions not known yet. */
  async load(): Promise<void> {
    if (!this.store) return;
    for (const row of await this.store.all()) {
      if (this.histories.get(row.definition.id)?.versions[0]?.builtin) continue;
      const history = this.historyOf(row.definition.id);
      if (history.versions.some((v) => v.version === row.version)) {
        history.deleted = row.deleted;
        continue;
      }
      history.versions.push({
        definition: row.definition,
        version: row.version,
        builtin: false,
        compiled: compileWorkflow(row.definition),
      });
      history.deleted = row.deleted;
    }
    for (const [id, n] of await this.store.usage()) this.usage.set(id, n);
  }

  /** The newest version (or the one asked for: a deleted workflow's versions stay reachable by number). */
  get(id: string, version = 0): CatalogEntry {
    const history = this.histories.get(id);
    const entry =
      version > 0
        ? history?.versions.find((v) => v.version === version)
        : history && !history.deleted
          ? history.versions.at(-1)
          : undefined;
    if (!entry)
      throw new NotFoundError(
        version > 0 ? "version" : "workflow_id",
        `no workflow ${quote(id)}${version > 0 ? ` version ${version}` : ""} (known: ${this.list()
          .map((e) => e.definition.id)
          .join(", ")})`,
      );
    return entry;
  }

  /**
   * `get`, reading the store again on a miss: another orchestrator replica on the same database may have made
   * the workflow or version (a batch item it offered runs the batch's version here).
   */
  async resolve(id: string, version = 0): Promise<CatalogEntry> {
    try {
      return this.get(id, version);
    } catch (err) {
      if (!(err instanceof NotFoundError) || !this.store) throw err;
      await this.load();
      return this.get(id, version);
    }
  }

  /** The newest version of every workflow not deleted, built-ins first. */
  list(): CatalogEntry[] {
    return [...this.histories.values()].filter((h) => !h.deleted).flatMap((h) => h.versions.slice(-1));
  }

  usageOf(id: string): number {
    return this.usage.get(id) ?? 0;
  }

  /** Counts a session submitted for the workflow. */
  recordUse(id: string): void {
    this.usage.set(id, this.usageOf(id) + 1);
    void this.store?.recordUse(id).catch(() => {});
  }

  async create(definition: WorkflowDefinition): Promise<CatalogEntry> {
    const history = this.histories.get(definition.id);
    if (history?.versions[0]?.builtin) throw builtinError(definition.id, "create");
    if (history && !history.deleted)
      throw new AlreadyExistsError(
        "workflow.id",
        `workflow ${quote(definition.id)} exists; update it instead`,
      );
    // A deleted workflow created again continues its version numbers, so a version names one definition.
    return this.add(definition);
  }

  async update(definition: WorkflowDefinition): Promise<CatalogEntry> {
    const history = this.histories.get(definition.id);
    if (history?.versions[0]?.builtin) throw builtinError(definition.id, "update");
    if (!history || history.deleted)
      throw new NotFoundError("workflow.id", `no workflow ${quote(definition.id)}; create it first`);
    return this.add(definition);
  }

  async remove(id: string): Promise<void> {
    const history = this.histories.get(id);
    if (history?.versions[0]?.builtin) throw builtinError(id, "delete");
    if (!history || history.deleted) throw new NotFoundError("workflow_id", `no workflow ${quote(id)}`);
    await this.store?.markDeleted(id);
    history.deleted = true;
  }

  private async add(definition: WorkflowDefinition): Promise<CatalogEntry> {
    const compiled = compileWorkflow(definition);
    const history = this.historyOf(definition.id);
    const version = (history.versions.at(-1)?.version ?? 0) + 1;
    await this.store?.insert(definition, version);
    const entry = { definition, version, builtin: false, compiled };
    history.versions.push(entry);
    history.deleted = false;
    return entry;
  }

  private historyOf(id: string): History {
    let history = this.histories.get(id);
    if (!history) {
      history = { versions: [], deleted: false };
      this.histories.set(id, history);
    }
    return history;
  }
}

function builtinError(id: string, what: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `workflow ${quote(id)} is built in and read-only; ${what} one under another id`,
    "workflow.id",
  );
}
