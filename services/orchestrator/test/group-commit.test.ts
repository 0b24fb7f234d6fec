import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@dmesh/runtime";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";

let dir: string;
let db: Db;
const commits = () =>
  (db.prepare("SELECT commits FROM durability_marker").get() as { commits: number }).commits;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-group-commit-"));
  db = openDatabase(join(dir, "dmesh.sqlite"));
});
afterEach(() => {
  if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("GroupCommit", () => {
  it("syncs once for every caller of a turn, then tells them in the order they asked", async () => {
    const group = new GroupCommit(db, createLogger("test", "silent"));
    const told: string[] = [];
    group.inOrder(() => told.push("nothing pending: at once"));
    group.afterSync(() => told.push("durable 1"));
    group.inOrder(() => told.push("cached after durable 1"));
    const synced = Array.from({ length: 50 }, () => group.sync());
    group.afterSync(() => told.push("durable 2"));
    expect(told).toEqual(["nothing pending: at once"]);
    expect(commits()).toBe(0);
    await Promise.all(synced);
    expect(told).toEqual(["nothing pending: at once", "durable 1", "cached after durable 1", "durable 2"]);
    // One fsync'd commit covered all 52 waiting; the connection is back to not syncing.
    expect(commits()).toBe(1);
    expect(db.pragma("synchronous", { simple: true })).toBe(1);
    await group.sync();
    expect(commits()).toBe(2);
  });

  it("syncs at once after close", () => {
    const group = new GroupCommit(db, createLogger("test", "silent"));
    let told = false;
    group.afterSync(() => {
      told = true;
    });
    group.close();
    expect(told).toBe(true);
    group.afterSync(() => {
      told = false;
    });
    expect(told).toBe(false);
    expect(commits()).toBe(2);
  });
});
