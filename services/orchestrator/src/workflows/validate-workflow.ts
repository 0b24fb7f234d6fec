import type { WorkflowTemplate } from "./templates.js";

/**
 * Checks a template's shape: unique step ids, known dependencies, inputs wired to declared inputs or to
 * earlier steps, and no cycles. Returns the steps in an order that respects dependencies.
 */
export function validateWorkflow(template: WorkflowTemplate): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const step of template.steps) {
    if (ids.has(step.id)) problems.push(`step "${step.id}" is defined twice`);
    ids.add(step.id);
  }
  const declared = new Set(template.inputs.map((i) => i.name));
  for (const step of template.steps) {
    for (const dep of step.dependsOn) {
      if (!ids.has(dep)) problems.push(`step "${step.id}" depends on unknown step "${dep}"`);
    }
    for (const [name, source] of Object.entries(step.inputs)) {
      const [from, output] = source.split(".", 2);
      if (from === "input") {
        if (!output || !declared.has(output))
          problems.push(`step "${step.id}" input "${name}" reads undeclared input "${source}"`);
      } else if (!from || !step.dependsOn.includes(from)) {
        problems.push(`step "${step.id}" input "${name}" reads "${source}" without depending on "${from}"`);
      }
    }
  }
  if (problems.length > 0) throw new Error(`workflow "${template.id}" is malformed: ${problems.join("; ")}`);

  // Kahn's algorithm: whatever cannot be ordered sits on a cycle.
  const order: string[] = [];
  const remaining = new Map(template.steps.map((s) => [s.id, new Set(s.dependsOn)]));
  while (remaining.size > 0) {
    const ready = [...remaining].filter(([, deps]) => deps.size === 0).map(([id]) => id);
    if (ready.length === 0) {
      throw new Error(
        `workflow "${template.id}" has a cycle through steps ${[...remaining.keys()].join(", ")}`,
      );
    }
    for (const id of ready) {
      order.push(id);
      remaining.delete(id);
      for (const deps of remaining.values()) deps.delete(id);
    }
  }
  return order;
}
