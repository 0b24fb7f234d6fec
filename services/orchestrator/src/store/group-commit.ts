import { closeSync, fdatasync, fdatasyncSync, fsyncSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { promisify } from "node:util";
import type { Logger } from "@dmesh/runtime/logger";
import { storeCommitSeconds } from "../orchestrator-metrics.js";
import type { Db } from "./database.js";

const fdatasyncInPool = promisify(fdatasync);

interface Told {
  then: () => void;
  /** The sync that must have finished first (0: none, only what is ahead of it). */
  after: number;
}

/**
 * Group commit. The database runs with synchronous=NORMAL: a write is in the WAL (the page cache) when it
 * returns, so it survives a crash of this process at once, but reaches the disk later. What a client is told
 * waits for `afterSync`: one fdatasync of the WAL file covers every write made before it started (SQLite
 * appends to the WAL in order, and syncs it itself before each checkpoint and WAL restart), however many
 * sessions wrote. The sync runs on libuv's thread pool, so the event loop keeps serving while the disk
 * flushes; writes made meanwhile wait for the next one. The WAL file stays open: SQLite keeps the same file
 * for as long as a connection is open, and ours is open until shutdown.
 */
export class GroupCommit {
  private readonly queue: Told[] = [];
  private readonly wal: string | undefined;
  /** Syncs started and finished; a write made now is covered by sync number `started + 1`. */
  private started = 0;
  private finished = 0;
  private scheduled = false;
  private syncing = false;
  private closed = false;
  private walFd: number | undefined;
  /** Writes made and not yet applied: a sync covers them only once they are. */
  private readonly writes = new Set<Promise<unknown>>();

  /**
   * `db` undefined: a server database (PostgreSQL), whose writes are on its disk when they are answered;
   * then a sync only waits for the writes made before it.
   */
  constructor(
    private readonly db: Db | undefined,
    private readonly logger: Logger,
  ) {
    this.wal = !db || db.memory ? undefined : `${db.name}-wal`;
  }

  /**
   * A write whose promise a caller does not await: the next sync waits for it to be applied, so that what
   * is told after that sync includes it. A failed write is logged (its caller has moved on).
   */
  track(write: Promise<unknown>): void {
    const settled: Promise<void> = write.then(
      () => {
        this.writes.delete(settled);
      },
      (err: unknown) => {
        this.writes.delete(settled);
        this.logger.error({ err: String(err) }, "a store write failed");
      },
    );
    this.writes.add(settled);
  }

  /** Runs `then` once everything written so far is on disk. */
  afterSync(then: () => void): void {
    this.queue.push({ then, after: this.started + 1 });
    if (this.closed) this.syncNow();
    else this.schedule();
  }

  /** Runs `then` now, or, when others wait for a sync, after them: what is told keeps its order. */
  inOrder(then: () => void): void {
    if (this.queue.length > 0) this.queue.push({ then, after: 0 });
    else then();
  }

  sync(): Promise<void> {
    return new Promise((resolve) => this.afterSync(resolve));
  }

  /** Syncs what is pending and from now on syncs at once, blocking (the database is about to close). */
  close(): void {
    this.closed = true;
    if (this.queue.length > 0) this.syncNow();
    else this.closeWal();
  }

  /** One sync per event-loop turn at most, and one at a time: callers of a turn share it. */
  private schedule(): void {
    if (this.scheduled || this.syncing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.syncInBackground();
    });
  }

  private async syncInBackground(): Promise<void> {
    if (this.closed) return;
    const number = ++this.started;
    this.syncing = true;
    try {
      if (this.writes.size > 0) await Promise.all([...this.writes]);
      const fd = this.walFile();
      if (fd !== undefined) {
        const started = performance.now();
        await fdatasyncInPool(fd);
        storeCommitSeconds.observe((performance.now() - started) / 1000);
      }
    } catch (err) {
      // Telling is not held back forever by a failing disk; the failure is in the log.
      this.logger.error({ err: String(err) }, "group commit failed to sync");
    } finally {
      this.syncing = false;
    }
    // close() may have synced (and told) past this one meanwhile.
    this.finished = Math.max(this.finished, number);
    this.tell();
    if (this.closed) this.closeWal();
    else if (this.queue.length > 0) this.schedule();
  }

  /** Blocking, for close and after it (the database is about to close); the file is not kept open then. */
  private syncNow(): void {
    try {
      const fd = this.walFile();
      if (fd !== undefined) fdatasyncSync(fd);
    } catch (err) {
      this.logger.error({ err: String(err) }, "group commit failed to sync");
    }
    this.finished = ++this.started;
    this.tell();
    this.closeWal();
  }

  /**
   * The WAL file's descriptor, opened at the first sync, when its directory entry is synced too (SQLite made
   * the file when the database opened). None in memory, or once the database is closed: then nothing is
   * left in a WAL.
   */
  private walFile(): number | undefined {
    if (!this.db) return undefined;
    if (this.walFd === undefined && this.wal && this.db.open) {
      this.walFd = openSync(this.wal, "r");
      syncDirectory(dirname(this.wal));
    }
    return this.db.open ? this.walFd : undefined;
  }

  /** Not while a sync in the pool uses the descriptor: that one closes it when it is done. */
  private closeWal(): void {
    if (this.walFd === undefined || this.syncing) return;
    closeSync(this.walFd);
    this.walFd = undefined;
  }

  private tell(): void {
    while (this.queue.length > 0 && (this.queue[0]?.after ?? 0) <= this.finished) this.queue.shift()?.then();
  }
}

function syncDirectory(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
