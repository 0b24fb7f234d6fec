import { basename, extname } from "node:path";
import { openSafetensors, type SafetensorsFile } from "@dmesh/safetensors";
import { AdapterFileError, asAdapterError } from "./adapter-errors.js";
import { embeddingHash, loraHash } from "./adapter-hash.js";
import { type BaseFamily, embeddingKeys, readEmbeddingFile } from "./embedding-file.js";
import { groupLoraKeys, type LoraModuleKeys } from "./lora-keys.js";

export type AdapterKind = "lora" | "embedding";

/** What a listing shows of one adapter file. */
export interface AdapterInfo {
  /** The file's stem: what prompts and requests call it. */
  readonly name: string;
  readonly kind: AdapterKind;
  /** Told by tensor shapes (then kohya-ss metadata); "unknown" when neither says. */
  readonly family: BaseFamily;
  readonly sha256: string;
  /** A1111's short hash, as infotext's `Lora hashes` / `TI hashes` show it. */
  readonly shortHash: string;
  readonly bytes: number;
  /** LoRA: modules adapted; embedding: vectors (prompt tokens). */
  readonly size: number;
}

const CROSS_ATTENTION_WIDTHS: ReadonlyMap<number, BaseFamily> = new Map([
  [768, "sd1"],
  [1024, "sd2"],
  [2048, "sdxl"],
]);
const TEXT_WIDTHS: ReadonlyMap<number, BaseFamily> = new Map([
  [768, "sd1"],
  [1024, "sd2"],
]);

/**
 * A LoRA's base model from its shapes: a second text encoder or SGM block names mean SDXL; else the
 * width its cross-attention keys take (768 SD 1.x, 1024 SD 2.x, 2048 SDXL), else its text encoder's;
 * else what kohya-ss metadata says.
 */
export function loraFamily(groups: readonly LoraModuleKeys[], file: SafetensorsFile): BaseFamily {
  const sgm = /^(input_blocks|middle_block|output_blocks)[._]/;
  if (groups.some((g) => g.component === "text_encoder_2" || (g.component === "unet" && sgm.test(g.name))))
    return "sdxl";
  const inputWidth = (g: LoraModuleKeys) => file.tensors.get(g.downKey)?.shape[1] ?? 0;
  const crossAttention = groups.find((g) => g.component === "unet" && /attn2[._]to_[kv]$/.test(g.name));
  if (crossAttention !== undefined)
    return CROSS_ATTENTION_WIDTHS.get(inputWidth(crossAttention)) ?? "unknown";
  const text = groups.find((g) => g.component === "text_encoder" && /(q_proj|fc1)$/.test(g.name));
  if (text !== undefined && TEXT_WIDTHS.has(inputWidth(text)))
    return TEXT_WIDTHS.get(inputWidth(text)) as BaseFamily;
  const m = file.metadata;
  const spec = m["modelspec.architecture"] ?? "";
  if ((m.ss_base_model_version ?? "").startsWith("sdxl") || spec.startsWith("stable-diffusion-xl"))
    return "sdxl";
  if (m.ss_v2 === "True" || spec.startsWith("stable-diffusion-v2")) return "sd2";
  if (spec.startsWith("stable-diffusion-v1")) return "sd1";
  return "unknown";
}

/** Whether a file's tensors are an embedding's (clip_l + clip_g, or one tensor that is no LoRA key). */
function looksLikeEmbedding(file: SafetensorsFile): boolean {
  const keys = [...file.tensors.keys()];
  if (keys.length === 2 && keys.includes("clip_l") && keys.includes("clip_g")) return true;
  return keys.length === 1 && !/^(lora_|unet\.|text_encoder)/.test(keys[0] as string);
}

/**
 * Describes one adapter file: kind (checked against `expected`, the directory it was found in), base
 * family, A1111's hash, size. Reads the header, and hashes the file; refuses what is no adapter.
 */
export async function describeAdapterFile(path: string, expected?: AdapterKind): Promise<AdapterInfo> {
  const name = basename(path, extname(path));
  return asAdapterError(async () => {
    const file = await openSafetensors(path);
    try {
      const kind: AdapterKind = looksLikeEmbedding(file) ? "embedding" : "lora";
      if (expected !== undefined && kind !== expected) {
        throw new AdapterFileError(
          path,
          `is ${kind === "lora" ? "a LoRA" : "an embedding"}, not ${expected === "lora" ? "a LoRA" : "an embedding"}`,
        );
      }
      if (kind === "lora") {
        const groups = groupLoraKeys(path, file.tensors.keys());
        const hash = await loraHash(file);
        return {
          name,
          kind,
          family: loraFamily(groups, file),
          ...hash,
          bytes: file.fileBytes,
          size: groups.length,
        };
      }
      embeddingKeys(path, [...file.tensors.keys()]);
      const embedding = await readEmbeddingFile(path);
      const hash = await embeddingHash(path);
      return {
        name,
        kind,
        family: embedding.family,
        ...hash,
        bytes: file.fileBytes,
        size: embedding.vectorCount,
      };
    } finally {
      await file.close();
    }
  });
}
