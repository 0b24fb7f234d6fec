import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { ControlNetUnitSchema } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { AdapterRefSchema, GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { API_KEY_OPTION, DEFAULT_URL, orchestratorClients } from "../clients.js";
import { CONTROL_FLAG_HELP, CONTROL_FLAGS, controlNetsFromFlags } from "../control-options.js";
import { encodingOf } from "../image-file.js";
import { adaptersFromFlag, LORA_FLAG, LORA_FLAG_HELP } from "../lora-flag.js";
import { describeEnd, runWorkflow } from "../run-workflow.js";
import { SCHEDULER_FLAG_HELP, SPEC_FLAGS, specFromFlags } from "../spec-options.js";

export const GENERATE_HELP = `dmesh generate "prompt" [--negative TEXT] [--seed N] [--steps N] [--width W] [--height H]
    [--guidance G] [--scheduler NAME | --sampler NAME [--schedule TYPE]] [--count N] [--lora NAME:WEIGHT ...]
    [--out FILE|DIR]
    [--workflow txt2img|img2img|inpaint|txt2img-hires|...] [--input NAME=VALUE ...] [--image FILE]
    [--mask FILE] [--strength S]
    [--control NAME:IMAGE[:SCALE[:START:END]]] [--control-preprocess canny|none]
    [--request-id ID] [--detach] [--url ${DEFAULT_URL}]
  Runs a workflow through the orchestrator, shows its progress and saves the images. --input sets one of
  the workflow's scalar inputs (a number, true/false, or text).
  ${SCHEDULER_FLAG_HELP}.
  ${CONTROL_FLAG_HELP}.
  ${LORA_FLAG_HELP}.`;

export async function generate(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...SPEC_FLAGS,
      ...CONTROL_FLAGS,
      ...LORA_FLAG,
      out: { type: "string", default: ".dmesh/out" },
      url: { type: "string", default: DEFAULT_URL },
      ...API_KEY_OPTION,
      workflow: { type: "string", default: "txt2img" },
      image: { type: "string" },
      mask: { type: "string" },
      input: { type: "string", multiple: true, default: [] },
      "request-id": { type: "string" },
      detach: { type: "boolean", default: false },
    },
  });
  const prompt = positionals.join(" ");
  const spec = create(
    GenerationSpecSchema,
    specFromFlags(prompt, values, { width: 512, height: 512, steps: 20 }),
  );
  spec.controlNets = controlNetsFromFlags(values).map((unit) => create(ControlNetUnitSchema, unit));
  spec.adapters = adaptersFromFlag(values.lora).map((ref) => create(AdapterRefSchema, ref));
  const images: Record<
    string,
    { source: { case: "image"; value: { encoding: ImageEncoding; data: Uint8Array } } }
  > = {};
  for (const name of ["image", "mask"] as const) {
    const file = values[name];
    if (file)
      images[name] = {
        source: { case: "image", value: { encoding: encodingOf(file), data: readFileSync(file) } },
      };
  }
  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort());
  const { session, files } = await runWorkflow(orchestratorClients(values.url, values["api-key"]), {
    workflowId: values.workflow,
    spec,
    images,
    inputs: workflowInputs(values.input),
    out: values.out,
    requestId: values["request-id"],
    detach: values.detach,
    signal: abort.signal,
  });
  if (values.detach) {
    // The id alone on stdout, for `id=$(dmesh generate … --detach)`.
    process.stdout.write(`${session?.id ?? ""}\n`);
    return session ? 0 : 1;
  }
  for (const file of files) process.stdout.write(`${file}\n`);
  process.stderr.write(`session ${session?.id ?? "?"}: ${describeEnd(session)}\n`);
  return session?.state === SessionState.COMPLETED || session?.state === SessionState.PAUSED ? 0 : 1;
}

/** `--input scale=2 --input label=cat`: a JSON scalar where the value reads as one, else the text. */
export function workflowInputs(pairs: readonly string[]): Record<string, Value> {
  const inputs: Record<string, Value> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`--input ${JSON.stringify(pair)} is not NAME=VALUE`);
    const raw = pair.slice(eq + 1);
    let value: JsonValue = raw;
    try {
      const parsed = JSON.parse(raw) as JsonValue;
      if (typeof parsed === "number" || typeof parsed === "boolean") value = parsed;
    } catch {
      // Text.
    }
    inputs[pair.slice(0, eq)] = fromJson(ValueSchema, value);
  }
  return inputs;
}
