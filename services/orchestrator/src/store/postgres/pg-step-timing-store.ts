import { STEP_TIMINGS_KEPT, type StepTimingStore } from "../step-timing-store.js";
import type { PgDatabase } from "./pg-database.js";

/** The step timing store in PostgreSQL; a key's writes are ordered (record, then trim). */
export class PgStepTimingStore implements StepTimingStore {
  constructor(
    private readonly db: PgDatabase,
    private readonly keep = STEP_TIMINGS_KEPT,
  ) {}

  async record(key: string, seconds: number): Promise<void> {
    await this.db.transaction(`step_timings.${key}`, async (q) => {
      await q.query("INSERT INTO step_timings (key, recorded_at, seconds) VALUES ($1, $2, $3)", [
        key,
        Date.now(),
        seconds,
      ]);
      // ctid stands for SQLite's rowid: newest kept, ties broken by insertion.
      await q.query(
        `DELETE FROM step_timings WHERE key = $1 AND ctid NOT IN (
           SELECT ctid FROM step_timings WHERE key = $1 ORDER BY recorded_at DESC, ctid DESC LIMIT $2
         )`,
        [key, this.keep],
      );
    });
  }

  async average(key: string): Promise<number | undefined> {
    const rows = await this.db.read<{ seconds: number | null; n: string }>(
      [`step_timings.${key}`],
      "SELECT AVG(seconds) AS seconds, COUNT(*) AS n FROM step_timings WHERE key = $1",
      [key],
    );
    const row = rows[0];
    return row && Number(row.n) > 0 && row.seconds !== null ? Number(row.seconds) : undefined;
  }
}
