import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ArtifactStore } from "../src/store/artifact-store.js";
import { type Db, openDatabase } from "../src/store/database.js";
import { newSession } from "../src/store/session-store.js";
import { SqliteArtifactIndex } from "../src/store/sqlite-artifact-index.js";
import { SqliteSessionStore } from "../src/store/sqlite-session-store.js";

let dir: string;
let db: Db;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-artifact-refs-"));
  db = openDatabase(join(dir, "state", "dmesh.sqlite"));
});
afterEach(() => {
  if (db?.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

const meta = (tenant: string, sessionId: string, imageIndex = 0) => ({
  tenant,
  sessionId,
  mediaType: "image/png",
  width: 8,
  height: 8,
  imageIndex,
  seed: 7n,
});

describe("ArtifactStore.removeReferences", () => {
  it("removes one tenant's references, keeps another's and the bytes, which go with the last one", async () => {
    const sessions = new SqliteSessionStore(db);
    const artifacts = new ArtifactStore(new SqliteArtifactIndex(db), join(dir, "artifacts"));
    for (const [id, tenant] of [
      ["a1", "acme"],
      ["a2", "acme"],
      ["g1", "globex"],
    ] as const)
      await sessions.create(newSession({ id, tenant, workflowId: "txt2img" }), {});
    const shared = new Uint8Array([1, 2, 3]);
    const other = new Uint8Array([4, 5, 6]);
    // acme made the same bytes in two sessions (and another image beside one); globex made them once.
    const { id } = await artifacts.put(shared, meta("acme", "a1"));
    const kept = await artifacts.put(other, meta("acme", "a1", 1));
    await artifacts.put(shared, meta("acme", "a2"));
    await artifacts.put(shared, meta("globex", "g1"));

    expect(await artifacts.removeReferences(id, "initech")).toEqual([]);
    expect((await artifacts.removeReferences(id, "acme")).sort()).toEqual(["a1", "a2"]);
    expect(await artifacts.get(id, "acme")).toBeUndefined();
    expect((await artifacts.listBySession("a1", "acme")).map((a) => a.id)).toEqual([kept.id]);
    expect(await artifacts.listBySession("a2", "acme")).toEqual([]);
    expect(await artifacts.get(id, "globex")).toMatchObject({ sessionId: "g1" });
    // globex still references the bytes: the file stays.
    expect(await artifacts.removeUnreferenced([id])).toBe(0);
    expect(existsSync(artifacts.pathOf(id))).toBe(true);
    // A second delete finds nothing.
    expect(await artifacts.removeReferences(id, "acme")).toEqual([]);

    expect(await artifacts.removeReferences(id, "globex")).toEqual(["g1"]);
    expect(await artifacts.removeUnreferenced([id])).toBe(shared.length);
    expect(existsSync(artifacts.pathOf(id))).toBe(false);
    expect(existsSync(artifacts.pathOf(kept.id))).toBe(true);
    // The sessions themselves stay.
    expect((await sessions.get("a2"))?.id).toBe("a2");
  });
});
