import { createHash, randomUUID } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import { dirname, join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { type Artifact, ArtifactSchema } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import type { Db } from "./database.js";

export interface ArtifactMeta {
  sessionId: string;
  mediaType: string;
  width: number;
  height: number;
  imageIndex: number;
  seed: bigint;
}

/**
 * Images as content-addressed files (`<dir>/<sha256[0:2]>/<sha256>`) plus an index row per session and image.
 * The same bytes are stored once however many sessions made them; a file goes when its last row goes.
 */
export class ArtifactStore {
  private readonly stmts;
  private readonly putting = new Map<string, number>();

  constructor(
    db: Db,
    private readonly dir: string,
  ) {
    mkdirSync(dir, { recursive: true });
    this.stmts = {
      insert: db.prepare(
        "INSERT OR REPLACE INTO artifacts (id, session_id, image_index, created_at, data) VALUES (?, ?, ?, ?, ?)",
      ),
      byId: db.prepare("SELECT data FROM artifacts WHERE id = ? LIMIT 1"),
      bySession: db.prepare("SELECT data FROM artifacts WHERE session_id = ? ORDER BY image_index"),
      refs: db.prepare("SELECT COUNT(*) AS n FROM artifacts WHERE id = ?"),
      idsOfSession: db.prepare("SELECT DISTINCT id FROM artifacts WHERE session_id = ?"),
      idAt: db.prepare("SELECT id FROM artifacts WHERE session_id = ? AND image_index = ?"),
    };
  }

  /**
   * Writes the file durably (temp file, fsync, rename, fsync of its directory) off the event loop, then
   * indexes it: an index row always has its file, even after a power cut.
   */
  async put(bytes: Uint8Array, meta: ArtifactMeta): Promise<Artifact> {
    const id = createHash("sha256").update(bytes).digest("hex");
    // Counted from before the write until the row exists, so that a concurrent delete of another session
    // with the same bytes does not remove the file under this one.
    this.putting.set(id, (this.putting.get(id) ?? 0) + 1);
    try {
      if (!existsSync(this.pathOf(id))) await writeDurably(this.pathOf(id), bytes);
      return this.index(id, bytes.length, meta);
    } finally {
      const n = (this.putting.get(id) ?? 1) - 1;
      if (n > 0) this.putting.set(id, n);
      else this.putting.delete(id);
    }
  }

  private index(id: string, sizeBytes: number, meta: ArtifactMeta): Artifact {
    const artifact = create(ArtifactSchema, {
      ...meta,
      id,
      sizeBytes: BigInt(sizeBytes),
      createdAt: timestampNow(),
    });
    // A restarted session replaces its image: the bytes it had go when nothing else references them.
    const replaced = (this.stmts.idAt.get(meta.sessionId, meta.imageIndex) as { id: string } | undefined)?.id;
    this.stmts.insert.run(
      id,
      artifact.sessionId,
      artifact.imageIndex,
      Date.now(),
      toBinary(ArtifactSchema, artifact),
    );
    if (replaced && replaced !== id) this.removeUnreferenced([replaced]);
    return artifact;
  }

  get(id: string): Artifact | undefined {
    const row = this.stmts.byId.get(id) as { data: Buffer } | undefined;
    return row ? fromBinary(ArtifactSchema, row.data) : undefined;
  }

  listBySession(sessionId: string): Artifact[] {
    return (this.stmts.bySession.all(sessionId) as { data: Buffer }[]).map((r) =>
      fromBinary(ArtifactSchema, r.data),
    );
  }

  open(id: string, chunkBytes: number): AsyncIterable<Buffer> {
    return createReadStream(this.pathOf(id), { highWaterMark: chunkBytes });
  }

  read(id: string): Buffer {
    return readFileSync(this.pathOf(id));
  }

  pathOf(id: string): string {
    return join(this.dir, id.slice(0, 2), id);
  }

  /**
   * Call after the session's rows are gone (DELETE cascades): removes files no other session references.
   * Returns the bytes freed.
   */
  removeUnreferenced(ids: string[]): number {
    let freed = 0;
    for (const id of ids) {
      const { n } = this.stmts.refs.get(id) as { n: number };
      if (n > 0 || this.putting.has(id)) continue;
      const path = this.pathOf(id);
      if (!existsSync(path)) continue;
      freed += statSync(path).size;
      unlinkSync(path);
    }
    return freed;
  }

  idsOfSession(sessionId: string): string[] {
    return (this.stmts.idsOfSession.all(sessionId) as { id: string }[]).map((r) => r.id);
  }
}

async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.${randomUUID()}.tmp`;
  const file = await open(tmp, "w");
  try {
    await file.writeFile(bytes);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  const directory = await open(dir, "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
