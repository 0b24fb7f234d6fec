import { NotFoundError, quote } from "@dmesh/runtime/errors";
import type { WorkflowTemplate } from "./templates.js";
import { validateWorkflow } from "./validate-workflow.js";

export interface CatalogEntry {
  readonly template: WorkflowTemplate;
  /** Step ids in an order that respects dependencies. */
  readonly order: string[];
}

/** The workflows this orchestrator runs; every template is validated when the catalog is built. */
export class WorkflowCatalog {
  private readonly entries = new Map<string, CatalogEntry>();

  constructor(templates: readonly WorkflowTemplate[]) {
    for (const template of templates) {
      this.entries.set(template.id, { template, order: validateWorkflow(template) });
    }
  }

  get(id: string): CatalogEntry {
    const entry = this.entries.get(id);
    if (!entry)
      throw new NotFoundError(
        "workflow_id",
        `no workflow ${quote(id)} (known: ${[...this.entries.keys()].join(", ")})`,
      );
    return entry;
  }

  list(): CatalogEntry[] {
    return [...this.entries.values()];
  }
}
