import { openSafetensors, type SafetensorsFile } from "@dmesh/safetensors";
import { AdapterFileError, asAdapterError } from "./adapter-errors.js";
import type { AdapterComponent, AdapterTarget } from "./adapter-target.js";

// Textual-inversion embeddings as A1111 reads .safetensors ones (modules/textual_inversion): SDXL files
// hold `clip_l` and `clip_g`, one vector set per text encoder; SD 1.x/2.x files hold one tensor,
// conventionally `emb_params` (diffusers concept files name it after the token). Each is [n, width] or
// a single [width] vector.

/** SD 1.x (CLIP ViT-L, 768 wide), SD 2.x (OpenCLIP ViT-H, 1024), SDXL (clip_l + clip_g), or neither. */
export type BaseFamily = "sd1" | "sd2" | "sdxl" | "unknown";

/** At most one 75-token chunk: A1111 cannot place a longer embedding either. */
export const MAX_EMBEDDING_VECTORS = 75;

export interface VectorSet {
  /** Number of vectors (new tokens). */
  readonly count: number;
  readonly width: number;
  /** count × width, row-major. */
  readonly data: Float32Array;
}

export interface EmbeddingFile {
  readonly path: string;
  readonly family: BaseFamily;
  /** The one vector set of an SD 1.x/2.x file, under the key it was stored as. */
  readonly single?: { readonly key: string; readonly vectors: VectorSet };
  /** The two vector sets of an SDXL file. */
  readonly clipL?: VectorSet;
  readonly clipG?: VectorSet;
  /** Number of tokens the embedding takes in a prompt. */
  readonly vectorCount: number;
}

/** Widths of single-encoder families: the text encoder's hidden size. */
function singleFamily(width: number): BaseFamily {
  return width === 768 ? "sd1" : width === 1024 ? "sd2" : "unknown";
}

/** Which tensors make the embedding, from the header alone; throws naming the file when none do. */
export function embeddingKeys(
  file: string,
  keys: readonly string[],
): { single: string } | { clipL: string; clipG: string } {
  if (keys.includes("clip_l") && keys.includes("clip_g")) {
    if (keys.length !== 2) {
      const extra = keys.find((k) => k !== "clip_l" && k !== "clip_g") as string;
      throw new AdapterFileError(file, "an SDXL embedding holds clip_l and clip_g only", extra);
    }
    return { clipL: "clip_l", clipG: "clip_g" };
  }
  if (keys.length === 1) return { single: keys[0] as string };
  throw new AdapterFileError(
    file,
    `is not a textual-inversion embedding: expected emb_params (one tensor) or clip_l and clip_g, found ${keys.length} tensors`,
  );
}

async function readVectors(file: SafetensorsFile, key: string): Promise<VectorSet> {
  const { shape, data } = await file.readFloat(key);
  if (shape.length !== 1 && shape.length !== 2) {
    throw new AdapterFileError(
      file.path,
      `shape [${shape.join(", ")}] is not [vectors, width] or [width]`,
      key,
    );
  }
  const [count, width] = shape.length === 1 ? [1, shape[0] as number] : (shape as [number, number]);
  if (count < 1 || count > MAX_EMBEDDING_VECTORS || width < 1) {
    throw new AdapterFileError(
      file.path,
      `holds ${count} vectors of width ${width}; 1 to ${MAX_EMBEDDING_VECTORS} vectors fit a prompt`,
      key,
    );
  }
  if (!data.every(Number.isFinite))
    throw new AdapterFileError(file.path, "holds a value that is not finite", key);
  return { count, width, data };
}

/** Reads a textual-inversion embedding file whole (they are kilobytes). */
export async function readEmbeddingFile(path: string): Promise<EmbeddingFile> {
  return asAdapterError(async () => {
    const file = await openSafetensors(path);
    try {
      const keys = embeddingKeys(path, [...file.tensors.keys()]);
      if ("single" in keys) {
        const vectors = await readVectors(file, keys.single);
        return {
          path,
          family: singleFamily(vectors.width),
          single: { key: keys.single, vectors },
          vectorCount: vectors.count,
        };
      }
      const clipL = await readVectors(file, keys.clipL);
      const clipG = await readVectors(file, keys.clipG);
      if (clipL.count !== clipG.count) {
        throw new AdapterFileError(
          path,
          `holds ${clipG.count} vectors but clip_l holds ${clipL.count}`,
          keys.clipG,
        );
      }
      return { path, family: "sdxl", clipL, clipG, vectorCount: clipL.count };
    } finally {
      await file.close();
    }
  });
}

/** The hidden width of each text encoder a model has, from its token embedding or first q_proj. */
export function textEncoderWidths(target: AdapterTarget): Partial<Record<AdapterComponent, number>> {
  const widths: Partial<Record<AdapterComponent, number>> = {};
  for (const component of ["text_encoder", "text_encoder_2"] as const) {
    const modules = target.components[component];
    if (modules === undefined) continue;
    const token = modules.get("text_model.embeddings.token_embedding")?.shape[1];
    const q = modules.get("text_model.encoder.layers.0.self_attn.q_proj")?.shape[1];
    const width = token ?? q;
    if (width !== undefined) widths[component] = width;
  }
  return widths;
}

const FAMILY_NAMES: Readonly<Record<BaseFamily, string>> = {
  sd1: "an SD 1.x embedding",
  sd2: "an SD 2.x embedding",
  sdxl: "an SDXL embedding",
  unknown: "an embedding",
};

function describe(embedding: EmbeddingFile): string {
  const sets =
    embedding.single !== undefined
      ? `one vector set ${embedding.single.vectors.width} wide`
      : `clip_l ${embedding.clipL?.width} and clip_g ${embedding.clipG?.width} wide`;
  return `${FAMILY_NAMES[embedding.family]} (${sets})`;
}

/**
 * The vectors to add to each of a model's text encoders. An SDXL file fits a model with both encoders
 * (clip_l → text_encoder, clip_g → text_encoder_2) or the refiner's text_encoder_2 alone (clip_g); a
 * single-set file fits a model with one text encoder. Widths must equal the encoders'. Anything else is
 * an AdapterFileError naming the file.
 */
export function embeddingVectorsFor(
  embedding: EmbeddingFile,
  widths: Partial<Record<AdapterComponent, number>>,
): Partial<Record<"text_encoder" | "text_encoder_2", VectorSet>> {
  const te1 = widths.text_encoder;
  const te2 = widths.text_encoder_2;
  const model =
    te1 !== undefined && te2 !== undefined
      ? `text encoders ${te1} and ${te2} wide`
      : `one text encoder ${te1 ?? te2} wide`;
  const refuse = (): never => {
    throw new AdapterFileError(embedding.path, `is ${describe(embedding)}; this model has ${model}`);
  };
  const single = embedding.single?.vectors;
  if (single !== undefined) {
    const only =
      te1 !== undefined && te2 === undefined
        ? "text_encoder"
        : te1 === undefined && te2 !== undefined
          ? "text_encoder_2"
          : undefined;
    if (only === undefined || widths[only] !== single.width) return refuse();
    return { [only]: single };
  }
  const { clipL, clipG } = embedding;
  if (clipL === undefined || clipG === undefined || te2 === undefined || clipG.width !== te2) return refuse();
  if (te1 === undefined) return { text_encoder_2: clipG };
  if (clipL.width !== te1) return refuse();
  return { text_encoder: clipL, text_encoder_2: clipG };
}
