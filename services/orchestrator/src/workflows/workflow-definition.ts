/** A JSON value, as a workflow file and proto's google.protobuf.Value carry it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What flows along a workflow's edges, and what a declared input holds. */
export const VALUE_TYPES = ["spec", "image", "images", "string", "number", "integer", "boolean"] as const;
export type ValueType = (typeof VALUE_TYPES)[number];

export interface InputDeclaration {
  readonly name: string;
  readonly type: ValueType;
  readonly required: boolean;
  readonly description: string;
  /** Scalars only: the value when the caller gives none. */
  readonly default?: JsonValue;
}

/** One node of the DAG: a step kind, its parameters, and its inputs wired to other nodes' outputs. */
export interface StepDefinition {
  readonly id: string;
  readonly kind: string;
  readonly params: Readonly<Record<string, JsonValue>>;
  /** Port or parameter name -> "input.<name>" or "<step id>.<output>": the edges. */
  readonly inputs: Readonly<Record<string, string>>;
  /** Extra ordering edges; references already order their steps. */
  readonly dependsOn: readonly string[];
}

/**
 * A workflow as data: what a user writes in a workflow file, what the store keeps per version, and the form
 * the built-in workflows take.
 */
export interface WorkflowDefinition {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly categories: readonly string[];
  readonly inputs: readonly InputDeclaration[];
  readonly steps: readonly StepDefinition[];
}

/** A stored (or built-in) version of a definition. */
export interface WorkflowVersion {
  readonly definition: WorkflowDefinition;
  readonly version: number;
  readonly builtin: boolean;
}
