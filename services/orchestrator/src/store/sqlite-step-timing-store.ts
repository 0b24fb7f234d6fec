import type { Db } from "./database.js";
import { STEP_TIMINGS_KEPT, type StepTimingStore } from "./step-timing-store.js";

/** The step timing store in the embedded SQLite file. */
export class SqliteStepTimingStore implements StepTimingStore {
  private readonly stmts;

  constructor(
    db: Db,
    private readonly keep = STEP_TIMINGS_KEPT,
  ) {
    this.stmts = {
      insert: db.prepare("INSERT INTO step_timings (key, recorded_at, seconds) VALUES (?, ?, ?)"),
      trim: db.prepare(
        "DELETE FROM step_timings WHERE key = ? AND rowid NOT IN (SELECT rowid FROM step_timings WHERE key = ? ORDER BY recorded_at DESC, rowid DESC LIMIT ?)",
      ),
      average: db.prepare("SELECT AVG(seconds) AS seconds, COUNT(*) AS n FROM step_timings WHERE key = ?"),
    };
  }

  async record(key: string, seconds: number): Promise<void> {
    this.stmts.insert.run(key, Date.now(), seconds);
    this.stmts.trim.run(key, key, this.keep);
  }

  async average(key: string): Promise<number | undefined> {
    const row = this.stmts.average.get(key) as { seconds: number | null; n: number };
    return row.n > 0 && row.seconds !== null ? row.seconds : undefined;
  }
}
