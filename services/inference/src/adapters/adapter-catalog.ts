import type { Dirent } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import type { Logger } from "@dmesh/runtime/logger";
import { type AdapterInfo, describeAdapterFile } from "./adapter-listing.js";
import { CONTROLNET_FILE, type ControlNetInfo, describeControlNet } from "./controlnet-listing.js";

/** Where adapters are found: `<MODELS_DIR>/loras`, `/embeddings`, `/controlnet` unless configured otherwise. */
export interface AdapterDirs {
  readonly loras: string;
  readonly embeddings: string;
  readonly controlnets: string;
}

export type ListedAdapter = AdapterInfo | ControlNetInfo;
export type ListedKind = ListedAdapter["kind"];

/** Files that are candidates: safetensors, and pickles, listed never but named in a warning. */
const ADAPTER_EXTENSIONS = new Set([".safetensors", ".ckpt", ".pt", ".pth", ".bin"]);

interface Described {
  readonly kind: ListedKind;
  /** What the described files were: name, size and mtime of each; a change describes it again. */
  readonly signature: string;
  readonly result: Promise<ListedAdapter | undefined>;
}

/**
 * The adapters on disk, as ListAdapters shows them. A file's description (kind, family, hashes) is kept while
 * its size and mtime stay, since hashing a LoRA reads all of it. A file that is no usable adapter is left out
 * of the listing and named, with the reason, in one warning per version of the file: the listing is what a
 * request can use, and one bad file must not hide the good ones or fail the call.
 */
export class AdapterCatalog {
  private readonly described = new Map<string, Described>();

  constructor(
    private readonly dirs: AdapterDirs,
    private readonly logger: Logger,
  ) {}

  /** Every usable adapter, of `kind` only when given, by kind then name. */
  async list(kind?: ListedKind, signal?: AbortSignal): Promise<ListedAdapter[]> {
    const found: { path: string; kind: ListedKind }[] = [];
    const scan = async (dir: string, kind: "lora" | "embedding") => {
      for (const entry of await this.entries(dir)) {
        if (entry.isFile() && ADAPTER_EXTENSIONS.has(extname(entry.name).toLowerCase()))
          found.push({ path: join(dir, entry.name), kind });
      }
    };
    if (kind === undefined || kind === "lora") await scan(this.dirs.loras, "lora");
    if (kind === undefined || kind === "embedding") await scan(this.dirs.embeddings, "embedding");
    if (kind === undefined || kind === "controlnet") {
      for (const entry of await this.entries(this.dirs.controlnets))
        if (entry.isDirectory())
          found.push({ path: join(this.dirs.controlnets, entry.name), kind: "controlnet" });
    }
    const listed: ListedAdapter[] = [];
    // One at a time: hashing is disk-bound, and a cancelled call stops between files.
    for (const { path, kind } of found) {
      signal?.throwIfAborted();
      const adapter = await this.describe(path, kind);
      if (adapter) listed.push(adapter);
    }
    this.forgetMissing(new Set(found.map((f) => f.path)), kind);
    return listed.sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  }

  private async describe(path: string, kind: ListedKind): Promise<ListedAdapter | undefined> {
    let signature: string | undefined;
    try {
      signature = await signatureOf(path, kind);
    } catch (error) {
      // Unreadable (permissions, I/O): said each time, since nothing is kept to say it once.
      this.logger.warn(
        { file: path, kind, err: (error as Error).message },
        "adapter file left out of the listing",
      );
      return undefined;
    }
    if (signature === undefined) return undefined;
    const kept = this.described.get(path);
    if (kept?.signature === signature) return kept.result;
    const result = (kind === "controlnet" ? describeControlNet(path) : describeAdapterFile(path, kind)).catch(
      (error: Error) => {
        this.logger.warn({ file: path, kind, err: error.message }, "adapter file left out of the listing");
        return undefined;
      },
    );
    this.described.set(path, { kind, signature, result });
    return result;
  }

  /**
   * A directory's entries; none when it does not exist (no adapters of that kind), or cannot be read (said in
   * a warning: the other kinds are still listed).
   */
  private async entries(dir: string): Promise<Dirent[]> {
    try {
      return await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT")
        this.logger.warn({ dir, err: (error as Error).message }, "adapter directory cannot be read");
      return [];
    }
  }

  /** Drops what was kept of files of the kinds just scanned that are gone. */
  private forgetMissing(present: ReadonlySet<string>, kind: ListedKind | undefined): void {
    for (const [path, d] of this.described) {
      if ((kind === undefined || d.kind === kind) && !present.has(path)) this.described.delete(path);
    }
  }
}

/** Size and mtime of the file, or of every file of a ControlNet directory; undefined when it has gone. */
async function signatureOf(path: string, kind: ListedKind): Promise<string | undefined> {
  try {
    if (kind !== "controlnet") {
      const s = await stat(path);
      return `${s.size}:${s.mtimeMs}`;
    }
    const parts: string[] = [];
    for (const entry of await readdir(path, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const s = await stat(join(path, entry.name));
      parts.push(`${entry.name}:${s.size}:${s.mtimeMs}`);
    }
    // A directory without model.onnx still gets a signature, so its warning is said once.
    if (!parts.some((p) => p.startsWith(`${CONTROLNET_FILE}:`))) parts.push("no-model");
    return parts.sort().join("/");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
