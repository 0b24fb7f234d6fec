import { parseArgs } from "node:util";
import { AdapterKind, ModelFamily } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { API_KEY_OPTION, DEFAULT_URL, orchestratorClients } from "../clients.js";
import { printTable } from "./status.js";

export const MODELS_HELP = `dmesh models [--kind model|lora|embedding|controlnet] [--url ${DEFAULT_URL}]
  The model suites, then the LoRAs, embeddings and ControlNets the mesh can use: name, kind, base family,
  AUTOMATIC1111's short hash (adapters) and size on disk.`;

const KINDS: Record<string, AdapterKind | "model"> = {
  model: "model",
  lora: AdapterKind.LORA,
  embedding: AdapterKind.EMBEDDING,
  controlnet: AdapterKind.CONTROLNET,
};
const KIND_NAMES: Record<number, string> = {
  [AdapterKind.LORA]: "lora",
  [AdapterKind.EMBEDDING]: "embedding",
  [AdapterKind.CONTROLNET]: "controlnet",
};
const FAMILY_NAMES: Record<number, string> = {
  [ModelFamily.SDXL]: "sdxl",
  [ModelFamily.SDXL_REFINER]: "sdxl-refiner",
  [ModelFamily.SD1]: "sd1",
  [ModelFamily.SD2]: "sd2",
};

export async function models(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { url: { type: "string", default: DEFAULT_URL }, kind: { type: "string" }, ...API_KEY_OPTION },
  });
  const kind = values.kind === undefined ? undefined : KINDS[values.kind];
  if (values.kind !== undefined && kind === undefined) {
    process.stderr.write(
      `dmesh models: --kind must be one of ${Object.keys(KINDS).join(", ")}, got ${JSON.stringify(values.kind.slice(0, 40))}\n`,
    );
    return 2;
  }
  const client = orchestratorClients(values.url, values["api-key"]).models;
  const rows: string[][] = [];
  if (kind === undefined || kind === "model") {
    const res = await client.listModels({}, { timeoutMs: 10_000 });
    for (const m of res.models) {
      const bytes = m.components.reduce((n, c) => n + c.fileBytes, 0n);
      rows.push([m.id, "model", FAMILY_NAMES[m.family] ?? "-", "-", size(bytes)]);
    }
  }
  if (kind !== "model") {
    // Hashing adapters the replica has not seen yet reads their files: a longer deadline.
    const res = await client.listAdapters({ kind: kind ?? AdapterKind.UNSPECIFIED }, { timeoutMs: 120_000 });
    for (const a of res.adapters)
      rows.push([
        a.name,
        KIND_NAMES[a.kind] ?? "?",
        FAMILY_NAMES[a.family] ?? "-",
        a.shortHash,
        size(a.fileBytes),
      ]);
  }
  printTable(["name", "kind", "family", "hash", "size"], rows);
  return 0;
}

function size(bytes: bigint): string {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
