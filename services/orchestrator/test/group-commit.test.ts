import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { createLogger } from "@dmesh/runtime";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "../src/store/database.js";
import { GroupCommit } from "../src/store/group-commit.js";

let dir: string;
let db: Db;
const logger = createLogger("test", "silent");

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-group-commit-"));
  db = openDatabase(join(dir, "dmesh.sqlite"));
});
afterEach(() => {
  if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("GroupCommit", () => {
  it("tells every caller of a turn after one sync of the WAL, in the order they asked", async () => {
    expect(existsSync(join(dir, "dmesh.sqlite-wal"))).toBe(true);
    const group = new GroupCommit(db, logger);
    const told: string[] = [];
    group.inOrder(() => told.push("nothing pending: at once"));
    group.afterSync(() => told.push("durable 1"));
    group.inOrder(() => told.push("cached after durable 1"));
    const synced = Array.from({ length: 50 }, () => group.sync());
    group.afterSync(() => told.push("durable 2"));
    expect(told).toEqual(["nothing pending: at once"]);
    await Promise.all(synced);
    expect(told).toEqual(["nothing pending: at once", "durable 1", "cached after durable 1", "durable 2"]);
    // Nothing is pending any more: told at once again.
    group.inOrder(() => told.push("at once again"));
    expect(told.at(-1)).toBe("at once again");
  });

  it("keeps serving while a sync runs: what comes meanwhile waits for the next sync, in order", async () => {
    const group = new GroupCommit(db, logger);
    const told: string[] = [];
    const durable = (name: string) =>
      new Promise<void>((resolve) =>
        group.afterSync(() => {
          told.push(name);
          resolve();
        }),
      );
    const first = durable("durable 1");
    await nextTurn(); // the first sync is on the thread pool now
    group.inOrder(() => told.push("cached, behind durable 1"));
    db.prepare("UPDATE durability_marker SET commits = commits + 1").run();
    const second = durable("durable 2");
    group.inOrder(() => told.push("cached, behind durable 2"));
    expect(told).toEqual([]);
    await first;
    expect(told).toEqual(["durable 1", "cached, behind durable 1"]);
    await second;
    expect(told).toEqual(["durable 1", "cached, behind durable 1", "durable 2", "cached, behind durable 2"]);
  });

  it("syncs at once, blocking, from close on, even with a sync in flight", async () => {
    const group = new GroupCommit(db, logger);
    const told: string[] = [];
    group.afterSync(() => told.push("in flight"));
    await nextTurn();
    group.afterSync(() => told.push("pending"));
    group.close();
    expect(told).toEqual(["in flight", "pending"]);
    group.afterSync(() => told.push("after close"));
    expect(told.at(-1)).toBe("after close");
    db.close();
    group.afterSync(() => told.push("database closed"));
    expect(told.at(-1)).toBe("database closed");
    // The sync that was in flight when close came finishes without telling anything twice.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(told).toEqual(["in flight", "pending", "after close", "database closed"]);
  });

  it("tells in memory, where there is no file to sync", async () => {
    const memory = openDatabase(":memory:");
    try {
      const group = new GroupCommit(memory, logger);
      let told = false;
      const synced = group.sync().then(() => {
        told = true;
      });
      expect(told).toBe(false);
      await synced;
      expect(told).toBe(true);
    } finally {
      memory.close();
    }
  });
});
