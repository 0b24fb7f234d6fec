import { parseArgs } from "node:util";
import { BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { API_KEY_OPTION, DEFAULT_URL, orchestratorClients } from "../clients.js";
import { adaptersFromFlag, LORA_FLAG } from "../lora-flag.js";
import { ProgressBar } from "../progress-bar.js";
import { SPEC_FLAGS, specFromFlags } from "../spec-options.js";

export const BATCH_HELP = `dmesh batch "prompt" [--prompts "a|b|c"] [--seeds 1,2,3] [--guidances 5,7] [--lora NAME:WEIGHT ...]
    [--lora-weights NAME=0,0.5,1] [generation flags] [--url URL]
  Creates a batch from the product of the axes given and runs it, showing per-item progress.
dmesh batch-status ID      items and their states`;

export async function batch(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...SPEC_FLAGS,
      ...LORA_FLAG,
      "lora-weights": { type: "string" },
      url: { type: "string", default: DEFAULT_URL },
      ...API_KEY_OPTION,
      prompts: { type: "string" },
      seeds: { type: "string" },
      guidances: { type: "string" },
      priority: { type: "string", default: "0" },
    },
  });
  const clients = orchestratorClients(values.url, values["api-key"]);
  const base = {
    ...specFromFlags(positionals.join(" ") || (values.prompts?.split("|")[0] ?? ""), values, {
      width: 512,
      height: 512,
      steps: 20,
    }),
    adapters: adaptersFromFlag(values.lora),
  };
  const axes = [];
  const loraWeights = values["lora-weights"];
  if (loraWeights) {
    const at = loraWeights.indexOf("=");
    if (at < 1) throw new Error(`--lora-weights expects NAME=W1,W2,…, got "${loraWeights.slice(0, 60)}"`);
    axes.push({
      field: `adapters.${loraWeights.slice(0, at)}.weight`,
      valuesJson: loraWeights
        .slice(at + 1)
        .split(",")
        .map((w) => w.trim()),
    });
  }
  if (values.prompts)
    axes.push({
      field: "conditioning.prompt",
      valuesJson: values.prompts.split("|").map((p) => JSON.stringify(p)),
    });
  if (values.seeds)
    axes.push({
      field: "params.seed",
      valuesJson: values.seeds.split(",").map((s) => JSON.stringify(s.trim())),
    });
  if (values.guidances)
    axes.push({
      field: "params.guidanceScale",
      valuesJson: values.guidances.split(",").map((g) => g.trim()),
    });
  const { batch: created } = await clients.processing.createBatch(
    { workflowId: "txt2img", base, axes, priority: Number(values.priority) },
    { timeoutMs: 30_000 },
  );
  if (!created) return 1;
  process.stderr.write(`batch ${created.id}: ${created.items.length} items\n`);
  const bar = new ProgressBar();
  let last = created;
  for await (const { event } of clients.processing.executeBatch({ batchId: created.id })) {
    if (!event?.batch) continue;
    last = event.batch;
    bar.update(
      "batch",
      last.completed + last.failed + last.cancelled,
      last.items.length,
      `${last.failed} failed`,
    );
  }
  bar.done();
  process.stdout.write(
    `batch ${last.id}: ${BatchState[last.state].toLowerCase()}, ${last.completed} completed, ${last.failed} failed\n`,
  );
  return last.state === BatchState.COMPLETED ? 0 : 1;
}

export async function batchStatus(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { url: { type: "string", default: DEFAULT_URL }, ...API_KEY_OPTION },
  });
  const { batch: b } = await orchestratorClients(values.url, values["api-key"]).processing.getBatch(
    { batchId: positionals[0] ?? "" },
    { timeoutMs: 10_000 },
  );
  if (!b) return 1;
  process.stdout.write(`batch ${b.id}: ${BatchState[b.state].toLowerCase()}\n`);
  for (const item of b.items) {
    process.stdout.write(
      `  ${item.index}\t${SessionState[item.state]?.toLowerCase() ?? ""}\t${item.sessionId}\t${item.error}\n`,
    );
  }
  return 0;
}
