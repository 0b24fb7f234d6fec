import { existsSync, readdirSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { FailedPreconditionError, NotFoundError, quote } from "@dmesh/runtime/errors";

/** Extensions of pickled PyTorch files: never unpickled (loading one runs code the file chose). */
const PICKLED = [".ckpt", ".pt", ".pth", ".bin"];

/** A file of an adapter directory and what identifies its bytes for caching. */
export interface AdapterFileRef {
  readonly name: string;
  readonly path: string;
  /** Size and modification time: a file replaced under the same name is a new cache key. */
  readonly version: string;
}

/**
 * The LoRA and embedding directories (`<MODELS_DIR>/loras`, `<MODELS_DIR>/embeddings` unless LORAS_DIR /
 * EMBEDDINGS_DIR say otherwise): adapters are named by file stem, `.safetensors` only.
 */
export class AdapterDirectory {
  private embeddingList: { stamp: string; files: AdapterFileRef[] } | undefined;

  constructor(
    readonly lorasDir: string,
    readonly embeddingsDir: string,
  ) {}

  /** The LoRA called `name`: NOT_FOUND naming it when there is none, FAILED_PRECONDITION for a pickle. */
  lora(name: string, field: string): AdapterFileRef {
    const path = join(this.lorasDir, `${name}.safetensors`);
    const version = versionOf(path);
    if (version !== undefined) return { name, path, version };
    const pickled = PICKLED.find((ext) => existsSync(join(this.lorasDir, `${name}${ext}`)));
    if (pickled !== undefined) {
      throw new FailedPreconditionError(
        `LoRA ${quote(name)} is ${name}${pickled}, a pickled PyTorch file, which is never loaded (unpickling runs code); convert it to .safetensors`,
        field,
      );
    }
    throw new NotFoundError(field, `no LoRA ${quote(name)} (no ${name}.safetensors in ${this.lorasDir})`);
  }

  /** Every `.safetensors` embedding, by stem; read again when the directory changes. */
  embeddings(): readonly AdapterFileRef[] {
    const stamp = versionOf(this.embeddingsDir) ?? "";
    if (this.embeddingList?.stamp === stamp) return this.embeddingList.files;
    const files: AdapterFileRef[] = [];
    if (stamp !== "") {
      for (const entry of readdirSync(this.embeddingsDir, { withFileTypes: true })) {
        if (!entry.isFile() || extname(entry.name) !== ".safetensors") continue;
        const path = join(this.embeddingsDir, entry.name);
        const version = versionOf(path);
        if (version !== undefined)
          files.push({ name: entry.name.slice(0, -".safetensors".length), path, version });
      }
    }
    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.embeddingList = { stamp, files };
    return files;
  }
}

function versionOf(path: string): string | undefined {
  try {
    const s = statSync(path);
    return `${s.size}:${s.mtimeMs}`;
  } catch {
    return undefined;
  }
}
