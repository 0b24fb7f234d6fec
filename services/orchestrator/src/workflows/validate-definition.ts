import { InvalidArgumentError, quote } from "@dmesh/runtime/errors";
import { accepts, type ParamSpec, STEP_KINDS, type StepKind } from "./step-kinds.js";
import {
  type JsonValue,
  VALUE_TYPES,
  type ValueType,
  type WorkflowDefinition,
} from "./workflow-definition.js";

/** Bounds on a definition, so that one cannot cost the orchestrator more than a page of JSON's worth. */
export const WORKFLOW_LIMITS = {
  steps: 32,
  /** Steps on the longest chain of dependencies. */
  depth: 16,
  inputs: 16,
  paramsPerStep: 16,
  categories: 8,
  /** The definition as JSON. */
  bytes: 64 * 1024,
} as const;

const ID = /^[a-z][a-z0-9_-]{0,63}$/;
const SCALARS = new Set<ValueType>(["string", "number", "integer", "boolean"]);

/** A definition checked and ordered: what the executor walks. */
export interface CompiledWorkflow {
  readonly definition: WorkflowDefinition;
  /** Step ids, every step after the steps it reads from. */
  readonly order: readonly string[];
  /** Each step's predecessors (references and depends_on together). */
  readonly predecessors: ReadonlyMap<string, readonly string[]>;
}

/** A reference "input.<name>" or "<step id>.<output>", parsed. */
export type Reference =
  | { readonly from: "input"; readonly name: string }
  | { readonly from: "step"; readonly step: string; readonly output: string };

export function parseReference(source: string): Reference | undefined {
  const dot = source.indexOf(".");
  if (dot <= 0 || dot === source.length - 1) return undefined;
  const head = source.slice(0, dot);
  const tail = source.slice(dot + 1);
  return head === "input" ? { from: "input", name: tail } : { from: "step", step: head, output: tail };
}

/**
 * Checks a workflow definition and orders its steps. Every problem is INVALID_ARGUMENT naming its path the
 * way the proto spells it (`steps[2].params.scale`): an unknown step kind, a cycle, a dangling reference, a
 * type mismatch, a missing required input, a parameter out of range, or a limit passed.
 */
export function compileWorkflow(definition: WorkflowDefinition): CompiledWorkflow {
  const bytes = Buffer.byteLength(JSON.stringify(definition));
  if (bytes > WORKFLOW_LIMITS.bytes)
    throw new InvalidArgumentError(
      "workflow",
      `is ${bytes} bytes as JSON; the limit is ${WORKFLOW_LIMITS.bytes}`,
    );
  checkId(definition.id, "id");
  if (definition.name.length > 128) throw new InvalidArgumentError("name", "is longer than 128 characters");
  if (definition.description.length > 2000)
    throw new InvalidArgumentError("description", "is longer than 2000 characters");
  if (definition.categories.length > WORKFLOW_LIMITS.categories)
    throw new InvalidArgumentError("categories", `has more than ${WORKFLOW_LIMITS.categories} entries`);
  for (const [i, c] of definition.categories.entries()) checkId(c, `categories[${i}]`);

  const inputs = new Map<string, ValueType>();
  if (definition.inputs.length > WORKFLOW_LIMITS.inputs)
    throw new InvalidArgumentError("inputs", `has more than ${WORKFLOW_LIMITS.inputs} entries`);
  definition.inputs.forEach((input, i) => {
    const path = `inputs[${i}]`;
    checkId(input.name, `${path}.name`);
    if (inputs.has(input.name))
      throw new InvalidArgumentError(`${path}.name`, `${quote(input.name)} is declared twice`);
    if (!(VALUE_TYPES as readonly string[]).includes(input.type))
      throw new InvalidArgumentError(
        `${path}.type`,
        `${quote(input.type)} is not one of ${VALUE_TYPES.join(", ")}`,
      );
    if (input.default !== undefined) {
      if (!SCALARS.has(input.type))
        throw new InvalidArgumentError(
          `${path}.default_value`,
          `only scalar inputs have defaults, not ${input.type}`,
        );
      const got = typeOfValue(input.default);
      if (!got || !accepts(input.type, got))
        throw new InvalidArgumentError(
          `${path}.default_value`,
          `is ${got ?? "null"}; the input is ${input.type}`,
        );
    }
    inputs.set(input.name, input.type);
  });

  const steps = definition.steps;
  if (steps.length === 0) throw new InvalidArgumentError("steps", "needs at least one step");
  if (steps.length > WORKFLOW_LIMITS.steps)
    throw new InvalidArgumentError(
      "steps",
      `has ${steps.length} steps; the limit is ${WORKFLOW_LIMITS.steps}`,
    );
  const index = new Map<string, number>();
  steps.forEach((step, i) => {
    checkId(step.id, `steps[${i}].id`);
    if (step.id === "input")
      throw new InvalidArgumentError(`steps[${i}].id`, `"input" names the workflow's inputs`);
    if (index.has(step.id))
      throw new InvalidArgumentError(`steps[${i}].id`, `${quote(step.id)} is used twice`);
    index.set(step.id, i);
  });

  const predecessors = new Map<string, string[]>();
  steps.forEach((step, i) => {
    const path = `steps[${i}]`;
    const kind = STEP_KINDS[step.kind];
    if (!kind)
      throw new InvalidArgumentError(
        `${path}.kind`,
        `${quote(step.kind)} is not a step kind (${Object.keys(STEP_KINDS).join(", ")})`,
      );
    checkParams(step.params, kind, `${path}.params`);
    const before = new Set<string>();
    for (const [name, source] of Object.entries(step.inputs)) {
      if (!ID.test(name))
        throw new InvalidArgumentError(`${path}.inputs`, `${quote(name)} is not an input name`);
      const where = `${path}.inputs.${name}`;
      const port = kind.ports[name];
      const param = kind.params[name];
      if (!port && !param)
        throw new InvalidArgumentError(
          where,
          `${step.kind} has no input or parameter ${quote(name)} (inputs: ${Object.keys(kind.ports).join(", ")})`,
        );
      if (param && step.params[name] !== undefined)
        throw new InvalidArgumentError(where, `parameter ${quote(name)} is also set in params`);
      const ref = parseReference(source);
      if (!ref)
        throw new InvalidArgumentError(where, `${quote(source)} is not "input.<name>" or "<step>.<output>"`);
      let type: ValueType;
      if (ref.from === "input") {
        const declared = inputs.get(ref.name);
        if (!declared) throw new InvalidArgumentError(where, `${quote(source)} names no declared input`);
        type = declared;
      } else {
        const at = index.get(ref.step);
        if (at === undefined) throw new InvalidArgumentError(where, `${quote(source)} names no step`);
        const target = steps[at];
        const output = target && STEP_KINDS[target.kind]?.outputs[ref.output];
        if (!output)
          throw new InvalidArgumentError(
            where,
            `${quote(source)}: step ${quote(ref.step)} has no output ${quote(ref.output)}`,
          );
        type = output;
        before.add(ref.step);
      }
      const want: ValueType = port ? port.type : (param?.type ?? "string");
      if (!accepts(want, type))
        throw new InvalidArgumentError(where, `expects ${want}, ${quote(source)} is ${type}`);
    }
    for (const [name, port] of Object.entries(kind.ports)) {
      if (port.required && step.inputs[name] === undefined)
        throw new InvalidArgumentError(`${path}.inputs.${name}`, `is required by a ${step.kind} step`);
    }
    if (step.kind === "generate") checkGenerateMode(step.params.mode, step.inputs, path);
    step.dependsOn.forEach((dep, j) => {
      if (!index.has(dep))
        throw new InvalidArgumentError(`${path}.depends_on[${j}]`, `${quote(dep)} names no step`);
      before.add(dep);
    });
    predecessors.set(step.id, [...before]);
  });
  if (!steps.some((s) => s.kind === "encode"))
    throw new InvalidArgumentError("steps", "needs an encode step: without one nothing is stored");

  const order = orderSteps(
    steps.map((s) => s.id),
    predecessors,
    (id, closing) => {
      const i = index.get(id) ?? 0;
      const step = steps[i];
      const edge = Object.entries(step?.inputs ?? {}).find(([, source]) => source.startsWith(`${closing}.`));
      return edge ? `steps[${i}].inputs.${edge[0]}` : `steps[${i}].depends_on`;
    },
  );
  const depth = new Map<string, number>();
  for (const id of order) {
    const d = 1 + Math.max(0, ...(predecessors.get(id) ?? []).map((p) => depth.get(p) ?? 0));
    if (d > WORKFLOW_LIMITS.depth)
      throw new InvalidArgumentError(
        `steps[${index.get(id)}]`,
        `is ${d} steps deep; the limit is ${WORKFLOW_LIMITS.depth}`,
      );
    depth.set(id, d);
  }
  return { definition, order, predecessors };
}

/**
 * Depth-first order; a step met again while it is still being visited closes a cycle, reported at the edge
 * that closes it (`pathOf(step, predecessor)`) with the steps along it.
 */
function orderSteps(
  ids: readonly string[],
  predecessors: ReadonlyMap<string, readonly string[]>,
  pathOf: (id: string, closing: string) => string,
): string[] {
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (id: string) => {
    state.set(id, "visiting");
    stack.push(id);
    for (const p of predecessors.get(id) ?? []) {
      const s = state.get(p);
      if (s === "visiting") {
        const cycle = [...stack.slice(stack.indexOf(p)), p];
        throw new InvalidArgumentError(pathOf(id, p), `closes a cycle: ${cycle.reverse().join(" → ")}`);
      }
      if (s === undefined) visit(p);
    }
    stack.pop();
    state.set(id, "done");
    order.push(id);
  };
  for (const id of ids) if (!state.has(id)) visit(id);
  return order;
}

function checkParams(params: Readonly<Record<string, JsonValue>>, kind: StepKind, path: string): void {
  const names = Object.keys(params);
  if (names.length > WORKFLOW_LIMITS.paramsPerStep)
    throw new InvalidArgumentError(path, `has more than ${WORKFLOW_LIMITS.paramsPerStep} parameters`);
  for (const name of names) {
    if (!ID.test(name)) throw new InvalidArgumentError(path, `${quote(name)} is not a parameter name`);
    const spec = kind.params[name];
    if (!spec)
      throw new InvalidArgumentError(
        `${path}.${name}`,
        `is not a parameter of this kind (${Object.keys(kind.params).join(", ") || "none"})`,
      );
    checkParam(params[name] ?? null, spec, `${path}.${name}`);
  }
}

/** Checks one parameter value against its spec; also used for values bound from the workflow's inputs. */
export function checkParam(value: JsonValue, spec: ParamSpec, path: string): void {
  const type = typeOfValue(value);
  if (!type || !accepts(spec.type, type))
    throw new InvalidArgumentError(
      path,
      `must be ${spec.type === "integer" ? "an integer" : `a ${spec.type}`}, got ${describe(value)}`,
    );
  if (spec.oneOf && !spec.oneOf.includes(value as string | number))
    throw new InvalidArgumentError(path, `must be one of ${spec.oneOf.join(", ")}, got ${describe(value)}`);
  if (typeof value === "number") {
    if ((spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max))
      throw new InvalidArgumentError(
        path,
        `must be in [${spec.min ?? "-∞"}, ${spec.max ?? "∞"}], got ${value}`,
      );
  }
  if (typeof value === "string" && spec.maxLength !== undefined && value.length > spec.maxLength)
    throw new InvalidArgumentError(path, `is longer than ${spec.maxLength} characters`);
}

function checkGenerateMode(
  mode: JsonValue | undefined,
  inputs: Readonly<Record<string, string>>,
  path: string,
): void {
  if ((mode === "img2img" || mode === "inpaint") && inputs.image === undefined)
    throw new InvalidArgumentError(`${path}.inputs.image`, `is required by mode ${mode}`);
  if (mode === "inpaint" && inputs.mask === undefined)
    throw new InvalidArgumentError(`${path}.inputs.mask`, "is required by mode inpaint");
  if (mode === "txt2img" && inputs.image !== undefined)
    throw new InvalidArgumentError(`${path}.inputs.image`, "is not read by mode txt2img");
}

function checkId(value: string, path: string): void {
  if (!ID.test(value))
    throw new InvalidArgumentError(
      path,
      `${quote(value)} must be 1-64 of a-z, 0-9, _ and -, starting with a letter`,
    );
}

/** The value type of a JSON value; undefined for null, arrays and objects. */
export function typeOfValue(value: JsonValue): ValueType | undefined {
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "string") return "string";
  if (typeof value === "number")
    return !Number.isFinite(value) ? undefined : Number.isInteger(value) ? "integer" : "number";
  return undefined;
}

function describe(value: JsonValue): string {
  if (typeof value === "string") return quote(value, 40);
  return typeof value === "number" || typeof value === "boolean"
    ? String(value)
    : quote(JSON.stringify(value), 40);
}
