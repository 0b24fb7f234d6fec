import { parseArgs } from "node:util";
import { API_KEY_OPTION, DEFAULT_URL, orchestratorClients } from "../clients.js";
import { printTable } from "./status.js";

export const WORKFLOWS_HELP = `dmesh workflows [--url ${DEFAULT_URL}]
  The workflows the orchestrator runs, their inputs and steps.`;

export async function workflows(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { url: { type: "string", default: DEFAULT_URL }, ...API_KEY_OPTION },
  });
  const res = await orchestratorClients(values.url, values["api-key"]).processing.listWorkflows(
    {},
    { timeoutMs: 10_000 },
  );
  printTable(
    ["id", "inputs", "steps", "description"],
    res.workflows.map((w) => [
      w.id,
      w.inputs.map((i) => (i.required ? i.name : `[${i.name}]`)).join(","),
      w.steps.map((s) => s.id).join(" > "),
      w.description,
    ]),
  );
  return 0;
}
