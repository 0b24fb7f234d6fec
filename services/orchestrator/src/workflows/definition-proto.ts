import { create, fromJson, type JsonValue as ProtoJson, toJson } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  type Workflow,
  WorkflowSchema,
  type WorkflowStep,
} from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { STEP_KINDS } from "./step-kinds.js";
import type { CatalogEntry } from "./workflow-catalog.js";
import type { JsonValue, ValueType, WorkflowDefinition } from "./workflow-definition.js";

/** A proto Workflow (CreateWorkflow, a JSON or YAML workflow file) as a definition; compile checks the rest. */
export function definitionFromProto(w: Workflow | undefined): WorkflowDefinition {
  if (!w) throw new InvalidArgumentError("workflow", "is required");
  return {
    id: w.id,
    name: w.name || w.id,
    description: w.description,
    categories: [...w.categories],
    inputs: w.inputs.map((i, n) => ({
      name: i.name,
      type: (i.type || (i.name === "spec" ? "spec" : "image")) as ValueType,
      required: i.required,
      description: i.description,
      ...(i.defaultValue ? { default: valueJson(i.defaultValue, `inputs[${n}].default_value`) } : {}),
    })),
    steps: w.steps.map((s) => ({
      id: s.id,
      kind: s.kind || legacyKind(s),
      params: (s.params ?? {}) as Record<string, JsonValue>,
      inputs: { ...s.inputs },
      dependsOn: [...s.dependsOn],
    })),
  };
}

/** A google.protobuf.Value as JSON; one JSON cannot carry (NaN, infinity) is refused at `field`. */
export function valueJson(value: Value, field: string): JsonValue {
  try {
    return toJson(ValueSchema, value) as JsonValue;
  } catch {
    throw new InvalidArgumentError(field, "is not a JSON value (NaN or infinity)");
  }
}

/** A definition from before step kinds named its operation instead ("generate:img2img", "upscale"). */
function legacyKind(step: WorkflowStep): string {
  return step.operation.split(":")[0] ?? "";
}

/** The proto form of a catalog entry (without its estimate). */
export function workflowToProto(entry: CatalogEntry, usageCount: number): Workflow {
  const d = entry.definition;
  const models = new Set<string>();
  if (d.steps.some((s) => STEP_KINDS[s.kind]?.domain === "inference" && s.kind !== "control"))
    models.add("base");
  if (d.steps.some((s) => s.kind === "refine" || s.params.refiner === true)) models.add("refiner");
  if (d.steps.some((s) => typeof s.params.upscaler === "string" && s.params.upscaler !== "lanczos"))
    models.add("upscaler");
  return create(WorkflowSchema, {
    id: d.id,
    name: d.name,
    description: d.description,
    categories: [...d.categories],
    version: entry.version,
    builtin: entry.builtin,
    usageCount,
    requiredModels: [...models],
    inputs: d.inputs.map((i) => ({
      name: i.name,
      required: i.required,
      description: i.description,
      type: i.type,
      ...(i.default !== undefined ? { defaultValue: fromJson(ValueSchema, i.default as ProtoJson) } : {}),
    })),
    steps: d.steps.map((s) => ({
      id: s.id,
      kind: s.kind,
      domain: STEP_KINDS[s.kind]?.domain ?? "",
      operation:
        s.kind === "generate" && typeof s.params.mode === "string" ? `generate:${s.params.mode}` : s.kind,
      dependsOn: entry.compiled.predecessors.get(s.id)?.slice() ?? [],
      inputs: { ...s.inputs },
      params: { ...s.params },
    })),
  });
}
