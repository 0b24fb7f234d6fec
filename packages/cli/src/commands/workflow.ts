import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parseArgs } from "node:util";
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Workflow, WorkflowSchema } from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { API_KEY_OPTION, DEFAULT_URL, orchestratorClients } from "../clients.js";

export const WORKFLOW_HELP = `dmesh workflow create FILE | update FILE | delete NAME
    | show NAME [--version N] [--width W --height H --steps N] [--json]   [--url ${DEFAULT_URL}]
  Defines a workflow from a JSON or YAML file (the Workflow message: id, inputs, steps with kind, params and
  inputs wired as "input.<name>" or "<step>.<output>"), updates it (a new version), shows one with its
  version, usage and its estimate for a request of that size and steps, or deletes it. Defining workflows
  takes an admin key when API keys are on.`;

export async function workflow(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string", default: DEFAULT_URL },
      ...API_KEY_OPTION,
      version: { type: "string", default: "0" },
      width: { type: "string" },
      height: { type: "string" },
      steps: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const [action, target] = positionals;
  if (!action || !target || positionals.length > 2) {
    process.stderr.write(`${WORKFLOW_HELP}\n`);
    return 2;
  }
  const processing = orchestratorClients(values.url, values["api-key"]).processing;
  const options = { timeoutMs: 10_000 };
  switch (action) {
    case "create":
    case "update": {
      const definition = readWorkflowFile(target);
      const res =
        action === "create"
          ? await processing.createWorkflow({ workflow: definition }, options)
          : await processing.updateWorkflow({ workflow: definition }, options);
      process.stdout.write(`workflow ${res.workflow?.id} version ${res.workflow?.version}\n`);
      return 0;
    }
    case "show": {
      const int = (v: string | undefined) => (v === undefined ? 0 : Number.parseInt(v, 10) || 0);
      const res = await processing.getWorkflow(
        {
          workflowId: target,
          version: int(values.version),
          spec: {
            size: { width: int(values.width), height: int(values.height) },
            ...(values.steps ? { scheduler: { steps: int(values.steps) } } : {}),
          },
        },
        options,
      );
      if (!res.workflow) return 1;
      process.stdout.write(showWorkflow(res.workflow, values.json));
      return 0;
    }
    case "delete":
      await processing.deleteWorkflow({ workflowId: target }, options);
      process.stdout.write(`workflow ${target} deleted\n`);
      return 0;
    default:
      process.stderr.write(`dmesh workflow: unknown action "${action}"\n${WORKFLOW_HELP}\n`);
      return 2;
  }
}

/** A workflow file: the Workflow message as proto JSON, written as JSON or YAML (by extension or content). */
export function readWorkflowFile(file: string): Workflow {
  const text = readFileSync(file, "utf8");
  const isJson = extname(file).toLowerCase() === ".json" || text.trimStart().startsWith("{");
  const parsed = (isJson ? JSON.parse(text) : parseYaml(text)) as JsonValue;
  return fromJson(WorkflowSchema, parsed);
}

/**
 * YAML (the file's own form, so that `show` output can be edited and updated) under a one-line summary as a
 * YAML comment, or JSON.
 */
export function showWorkflow(w: Workflow, json: boolean): string {
  const value = toJson(WorkflowSchema, w, { alwaysEmitImplicit: false });
  if (json) return `${JSON.stringify(value, null, 2)}\n`;
  const e = w.estimate;
  const mib = Number(e?.activationBytes ?? 0n) / (1 << 20);
  const summary = [
    `# workflow ${w.id} version ${w.version}${w.builtin ? " (built in)" : ""}: ${w.usageCount} session(s)`,
    `estimate ${(e?.estimatedSeconds ?? 0).toFixed(1)} s (${e?.estimateSource || "static"})`,
    `${mib.toFixed(0)} MiB of activations, models ${e?.models.join(", ") || "none"}`,
  ].join("; ");
  return `${summary}\n${stringifyYaml(value)}`;
}
