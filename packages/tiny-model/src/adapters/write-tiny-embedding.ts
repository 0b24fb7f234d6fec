import { type TensorToWrite, type WritableDtype, writeSafetensors } from "@dmesh/safetensors";
import type { TinyModelKind } from "../options.js";
import { createWeightInit } from "../weight-init.js";
import { tinyAdapterDims } from "./tiny-adapter-modules.js";

// Seeded textual-inversion embeddings for the tiny model, as A1111 stores them: SD 1.x `emb_params`
// [vectors, width]; SDXL `clip_l` and `clip_g`, one set per text encoder (the refiner's file too, whose
// model uses only clip_g).

export interface TinyEmbeddingOptions {
  readonly kind?: TinyModelKind;
  readonly seed?: number;
  /** Prompt tokens it stands for (default 2). */
  readonly vectors?: number;
  readonly dtype?: WritableDtype;
}

/** The tensors of a tiny embedding (same options, same bytes). */
export function tinyEmbeddingTensors(options: TinyEmbeddingOptions = {}): TensorToWrite[] {
  const kind = options.kind ?? "sdxl";
  const vectors = options.vectors ?? 2;
  if (!Number.isInteger(vectors) || vectors < 1 || vectors > 75)
    throw new RangeError("vectors must be an integer in [1, 75]");
  const dtype = options.dtype ?? "F32";
  const dims = tinyAdapterDims(kind);
  const init = createWeightInit(options.seed ?? 11);
  // Token embeddings of the tiny text encoders are drawn with standard deviation 1: so are these.
  const tensor = (name: string, width: number): TensorToWrite => ({
    name,
    dtype,
    shape: [vectors, width],
    data: init.uniform(name, vectors * width, 1),
  });
  if (kind === "sd15") return [tensor("emb_params", dims.textEncoder?.hiddenSize as number)];
  // The refiner's tiny dims have no CLIP-L; its SDXL files still carry clip_l at the base model's width.
  const clipL = tinyAdapterDims("sdxl").textEncoder?.hiddenSize as number;
  return [tensor("clip_g", dims.textEncoder2?.hiddenSize as number), tensor("clip_l", clipL)];
}

/** Writes a tiny embedding to `path` (whole or not at all); returns its size in bytes. */
export async function writeTinyEmbedding(path: string, options: TinyEmbeddingOptions = {}): Promise<number> {
  return writeSafetensors(path, tinyEmbeddingTensors(options));
}
