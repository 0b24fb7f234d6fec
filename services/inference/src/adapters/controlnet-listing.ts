import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { readOnnxGraphIo } from "@dmesh/onnx";
import { AdapterFileError } from "./adapter-errors.js";
import { a1111ModelHash } from "./adapter-hash.js";
import type { BaseFamily } from "./embedding-file.js";

/** The file of a ControlNet directory (`<MODELS_DIR>/controlnet/<name>/`), as the split ONNX export names it. */
export const CONTROLNET_FILE = "model.onnx";

/** What a listing shows of one ControlNet. */
export interface ControlNetInfo {
  /** Its directory's name: what ControlNet units call it. */
  readonly name: string;
  readonly kind: "controlnet";
  readonly family: BaseFamily;
  /** SHA-256 of model.onnx followed by the directory's other files (external data) in name order. */
  readonly sha256: string;
  /** A1111's model hash of model.onnx (8 hex digits), as the ControlNet extension's infotext shows it. */
  readonly shortHash: string;
  /** Bytes of every file of the directory. */
  readonly bytes: number;
}

/** The width of the text embeddings a UNet family cross-attends to. */
const HIDDEN_WIDTHS: ReadonlyMap<number, BaseFamily> = new Map([
  [768, "sd1"],
  [1024, "sd2"],
  [2048, "sdxl"],
]);

/**
 * A ControlNet's base family from its declared inputs: `text_embeds` (the pooled embedding only SDXL's added
 * conditioning takes) means SDXL; else the last dim of `encoder_hidden_states`; "unknown" when it is symbolic.
 */
export function controlNetFamily(inputs: readonly { name: string; dims: readonly (number | string)[] }[]) {
  if (inputs.some((i) => i.name === "text_embeds")) return "sdxl";
  const width = inputs.find((i) => i.name === "encoder_hidden_states")?.dims.at(-1);
  return (typeof width === "number" && HIDDEN_WIDTHS.get(width)) || "unknown";
}

/**
 * Describes one ControlNet directory: family by its input shapes (read without reading its weights), hash and
 * size of its files. Refuses a directory without model.onnx, or whose model has no `controlnet_cond` and
 * `encoder_hidden_states` inputs (no ControlNet), naming the file.
 */
export async function describeControlNet(dir: string): Promise<ControlNetInfo> {
  const file = join(dir, CONTROLNET_FILE);
  const name = basename(dir);
  // Unreadable or no ONNX: a ModelContractError naming the ControlNet and the file.
  const io = await readOnnxGraphIo(file, name);
  for (const input of ["controlnet_cond", "encoder_hidden_states"]) {
    if (!io.inputs.some((i) => i.name === input))
      throw new AdapterFileError(file, `is no ControlNet: it has no "${input}" input`);
  }
  const others = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && e.name !== CONTROLNET_FILE)
    .map((e) => e.name)
    .sort();
  const hash = createHash("sha256");
  let bytes = 0;
  for (const part of [CONTROLNET_FILE, ...others]) {
    const path = join(dir, part);
    bytes += (await stat(path)).size;
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
      hash.update(chunk as Buffer);
  }
  const sha256 = hash.digest("hex");
  return {
    name,
    kind: "controlnet",
    family: controlNetFamily(io.inputs),
    sha256,
    shortHash: await a1111ModelHash(file),
    bytes,
  };
}
