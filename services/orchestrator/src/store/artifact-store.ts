import { createHash, randomUUID } from "node:crypto";
import {
  closeSync,
  createReadStream,
  existsSync,
  fdatasync,
  fsync,
  mkdirSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFile,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { type Artifact, ArtifactSchema } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";

const writeFileInPool = promisify(writeFile);
const fdatasyncInPool = promisify(fdatasync);
const fsyncInPool = promisify(fsync);

export interface ArtifactMeta {
  /** Who made it: only this tenant sees the reference (the bytes are stored once for every tenant). */
  tenant: string;
  sessionId: string;
  mediaType: string;
  width: number;
  height: number;
  imageIndex: number;
  seed: bigint;
}

/**
 * An artifact's row: the index of which session made which image, in the orchestrator database (SQLite or
 * PostgreSQL). The bytes are files beside it (ArtifactStore).
 */
export interface ArtifactIndex {
  /** How many rows, of any session and tenant, reference these bytes. */
  refs(id: string): Promise<number>;
  /** The bytes a session's image index references now. */
  idAt(sessionId: string, imageIndex: number): Promise<string | undefined>;
  /** Adds the row, or replaces the one of the same session and image index. */
  put(row: {
    id: string;
    tenant: string;
    sessionId: string;
    imageIndex: number;
    data: Uint8Array;
  }): Promise<void>;
  byId(id: string, tenant: string): Promise<Uint8Array | undefined>;
  bySession(sessionId: string, tenant: string): Promise<Uint8Array[]>;
  idsOfSession(sessionId: string): Promise<string[]>;
  /** Deletes the tenant's rows of these bytes; answers the sessions they were in. */
  removeOfTenant(id: string, tenant: string): Promise<string[]>;
}

/**
 * Images as content-addressed files (`<dir>/<sha256[0:2]>/<sha256>`) plus an index row per session and image.
 * The same bytes are stored once however many sessions made them; a file goes when its last row goes.
 */
export class ArtifactStore {
  private readonly putting = new Map<string, number>();
  /** Subdirectories known to exist. */
  private readonly dirs = new Set<string>();

  constructor(
    private readonly rows: ArtifactIndex,
    private readonly dir: string,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  /**
   * Writes the file durably off the event loop, then indexes it: an index row always has its file, even
   * after a power cut. A file no row references may be left part-written by one, so it is written again.
   */
  async put(bytes: Uint8Array, meta: ArtifactMeta): Promise<Artifact> {
    const id = createHash("sha256").update(bytes).digest("hex");
    // Counted from before the write until the row exists, so that a concurrent delete of another session
    // with the same bytes does not remove the file under this one.
    this.putting.set(id, (this.putting.get(id) ?? 0) + 1);
    try {
      const n = await this.rows.refs(id);
      if (n === 0 || !existsSync(this.pathOf(id))) await this.writeDurably(id, bytes);
      return await this.index(id, bytes.length, meta);
    } finally {
      const n = (this.putting.get(id) ?? 1) - 1;
      if (n > 0) this.putting.set(id, n);
      else this.putting.delete(id);
    }
  }

  /**
   * Temp file, rename, then the file's data and the directory's new entry flushed at once (in parallel, not
   * one after the other): until the row exists nothing reads the file, so it may have its name before its
   * bytes are on disk. The bytes and the flushes go to the thread pool; opening, renaming and closing are
   * quick metadata calls, made here rather than paying a round trip through the pool each.
   */
  private async writeDurably(id: string, bytes: Uint8Array): Promise<void> {
    const path = this.pathOf(id);
    const dir = dirname(path);
    if (!this.dirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.dirs.add(dir);
    }
    const tmp = `${path}.${randomUUID()}.tmp`;
    const file = openSync(tmp, "w");
    try {
      await writeFileInPool(file, bytes);
      renameSync(tmp, path);
      const directory = openSync(dir, "r");
      try {
        await Promise.all([fdatasyncInPool(file), fsyncInPool(directory)]);
      } finally {
        closeSync(directory);
      }
    } finally {
      closeSync(file);
    }
  }

  private async index(id: string, sizeBytes: number, meta: ArtifactMeta): Promise<Artifact> {
    const { tenant, ...fields } = meta;
    const artifact = create(ArtifactSchema, {
      ...fields,
      id,
      sizeBytes: BigInt(sizeBytes),
      createdAt: timestampNow(),
    });
    // A restarted session replaces its image: the bytes it had go when nothing else references them.
    const replaced = await this.rows.idAt(meta.sessionId, meta.imageIndex);
    await this.rows.put({
      id,
      tenant,
      sessionId: artifact.sessionId,
      imageIndex: artifact.imageIndex,
      data: toBinary(ArtifactSchema, artifact),
    });
    if (replaced && replaced !== id) await this.removeUnreferenced([replaced]);
    return artifact;
  }

  /** The tenant's reference to these bytes; another tenant's answers as a missing one. */
  async get(id: string, tenant: string): Promise<Artifact | undefined> {
    const data = await this.rows.byId(id, tenant);
    return data ? fromBinary(ArtifactSchema, data) : undefined;
  }

  /** The tenant's artifacts of a session (none for another tenant's session, as for a missing one). */
  async listBySession(sessionId: string, tenant: string): Promise<Artifact[]> {
    return (await this.rows.bySession(sessionId, tenant)).map((data) => fromBinary(ArtifactSchema, data));
  }

  open(id: string, chunkBytes: number): AsyncIterable<Buffer> {
    return createReadStream(this.pathOf(id), { highWaterMark: chunkBytes });
  }

  async read(id: string): Promise<Buffer> {
    return readFile(this.pathOf(id));
  }

  pathOf(id: string): string {
    return join(this.dir, id.slice(0, 2), id);
  }

  /**
   * Call after the session's rows are gone (DELETE cascades): removes files no other session references.
   * Returns the bytes freed.
   */
  async removeUnreferenced(ids: string[]): Promise<number> {
    let freed = 0;
    for (const id of ids) {
      if (this.putting.has(id) || (await this.rows.refs(id)) > 0) continue;
      const path = this.pathOf(id);
      if (!existsSync(path)) continue;
      freed += statSync(path).size;
      unlinkSync(path);
    }
    return freed;
  }

  /**
   * Deletes the tenant's references to these bytes (one per session and image that made them) and returns
   * the sessions they were in, none when the tenant has none. Other tenants' references stay; the file is
   * left for `removeUnreferenced`, once the deletion is on disk.
   */
  async removeReferences(id: string, tenant: string): Promise<string[]> {
    return [...new Set(await this.rows.removeOfTenant(id, tenant))];
  }

  async idsOfSession(sessionId: string): Promise<string[]> {
    return this.rows.idsOfSession(sessionId);
  }
}
