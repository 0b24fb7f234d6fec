import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "../cli-args.js";
import type { TinyModelKind } from "../options.js";
import { writeTinyEmbedding } from "./write-tiny-embedding.js";
import {
  TINY_LORA_LAYOUTS,
  type TinyLoraLayout,
  TinyLoraOptionError,
  writeTinyLora,
} from "./write-tiny-lora.js";

export const ADAPTER_USAGE = `usage: dmesh-tiny-model <dir> --artifact lora --layout LAYOUT [options]
       dmesh-tiny-model <dir> --artifact embedding [options]

Writes <dir>/<name>.safetensors: a seeded LoRA or textual-inversion embedding for the tiny model.

  --layout ${TINY_LORA_LAYOUTS.join("|")}   LoRA key layout
  --kind sdxl|sdxl-refiner|sd15        model it is for (default: sd15 for kohya-sd1, else sdxl)
  --seed N                             weight seed (default 7 for LoRAs, 11 for embeddings)
  --rank N                             LoRA rank, 1..64 (default 4)
  --layers-per-block 1|2               the UNet's layers_per_block (default 1, the tiny model's)
  --vectors N                          embedding vectors, 1..75 (default 2)
  --name NAME                          file stem (default tiny-<layout> or tiny-embedding-<kind>)`;

const ARTIFACTS = ["lora", "embedding"] as const;

/** Whether the command line asks for an adapter artifact (it is then handled here, not by cli-args). */
export function isAdapterCommand(argv: readonly string[]): boolean {
  const at = argv.indexOf("--artifact");
  const value =
    at >= 0 ? argv[at + 1] : argv.find((a) => a.startsWith("--artifact="))?.slice("--artifact=".length);
  return (ARTIFACTS as readonly string[]).includes(value ?? "");
}

/** A whole-number option within [min, max], or undefined when not given. */
function bounded(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\d{1,10}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max))
    throw new UsageError(
      `--${flag} must be a whole number in [${min}, ${max}], got ${JSON.stringify(value.slice(0, 20))}`,
    );
  return n;
}

const KINDS: readonly TinyModelKind[] = ["sdxl", "sdxl-refiner", "sd15"];

/** Writes the requested adapter file and returns the line to print. */
export async function runAdapterCommand(argv: readonly string[]): Promise<string> {
  try {
    return await run(argv);
  } catch (error) {
    if (error instanceof UsageError)
      throw new UsageError(`${error.message} (--artifact lora --help lists the options)`);
    throw error;
  }
}

async function run(argv: readonly string[]): Promise<string> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return ADAPTER_USAGE;
  if (positionals.length !== 1) throw new UsageError("expected exactly one <dir>");
  const kind = values.kind as TinyModelKind | undefined;
  if (kind !== undefined && !KINDS.includes(kind))
    throw new UsageError(`--kind must be one of ${KINDS.join(", ")}`);
  const seed = bounded("seed", values.seed, 0, 0xffffffff);
  const dir = resolve(positionals[0] as string);
  await mkdir(dir, { recursive: true });
  let path: string;
  try {
    if (values.artifact === "lora") {
      const layout = values.layout as TinyLoraLayout | undefined;
      if (layout === undefined) throw new UsageError("--artifact lora needs --layout");
      const layersPerBlock = bounded("layers-per-block", values["layers-per-block"], 1, 2);
      path = join(dir, `${values.name ?? `tiny-${layout}`}.safetensors`);
      await writeTinyLora(path, {
        layout,
        kind,
        seed,
        rank: bounded("rank", values.rank, 1, 64),
        layersPerBlock,
      });
    } else {
      path = join(dir, `${values.name ?? `tiny-embedding-${kind ?? "sdxl"}`}.safetensors`);
      await writeTinyEmbedding(path, { kind, seed, vectors: bounded("vectors", values.vectors, 1, 75) });
    }
  } catch (error) {
    if (error instanceof TinyLoraOptionError || error instanceof RangeError)
      throw new UsageError(error.message);
    throw error;
  }
  const bytes = await readFile(path);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return `wrote ${path}: ${bytes.length} bytes, sha256 ${sha256.slice(0, 16)}`;
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      artifact: { type: "string" },
      layout: { type: "string" },
      kind: { type: "string" },
      seed: { type: "string" },
      rank: { type: "string" },
      "layers-per-block": { type: "string" },
      vectors: { type: "string" },
      name: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}
