import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Db, openDatabase } from "../src/store/database.js";
import { SqliteStepTimingStore } from "../src/store/sqlite-step-timing-store.js";
import { BUILTIN_WORKFLOWS } from "../src/workflows/builtin-workflows.js";
import {
  estimateDuration,
  type RequestShape,
  recordTiming,
  stepWork,
} from "../src/workflows/duration-estimate.js";

const hiresWorkflow = BUILTIN_WORKFLOWS.find((w) => w.definition.id === "txt2img-hires")?.definition;
if (!hiresWorkflow) throw new Error("no txt2img-hires");
const steps = new Map(hiresWorkflow.steps.map((s) => [s.id, s]));
const at = (id: string) => {
  const step = steps.get(id);
  if (!step) throw new Error(`no step ${id}`);
  return step;
};
const shape: RequestShape = {
  model: "",
  width: 64,
  height: 64,
  steps: 4,
  scheduler: SchedulerKind.UNSPECIFIED,
  count: 1,
};

let dir: string;
let db: Db;
let timings: SqliteStepTimingStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-estimates-"));
  db = openDatabase(join(dir, "db.sqlite"));
  timings = new SqliteStepTimingStore(db, 3);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("duration estimates", () => {
  it("are static until the mesh has measured the steps, then follow the measurements", async () => {
    const before = await estimateDuration(hiresWorkflow, shape, timings);
    expect(before.source).toBe("static");
    for (const seconds of [1, 2, 3])
      for (const id of ["generate", "upscale", "hires", "encode"])
        await recordTiming(timings, at(id), shape, seconds / 10);
    const after = await estimateDuration(hiresWorkflow, shape, timings);
    expect(after.source).toBe("measured");
    // The mean of the measurements, per step (the builtin's hires pass is a generate step).
    expect(after.steps.get("generate")).toBeCloseTo(0.2, 6);
    expect(after.seconds).toBeCloseTo(0.8, 6);

    // Only the newest are kept: slower runs move the estimate.
    for (const id of ["generate", "upscale", "hires", "encode"])
      for (let i = 0; i < 3; i++) await recordTiming(timings, at(id), shape, 0.5);
    expect((await estimateDuration(hiresWorkflow, shape, timings)).seconds).toBeCloseTo(2, 6);
  });

  it("scale a kind's measured rate to a request of another shape", async () => {
    await recordTiming(timings, at("generate"), shape, 0.4);
    const bigger = { ...shape, width: 128, height: 128, steps: 8 };
    const estimate = await estimateDuration({ ...hiresWorkflow, steps: [at("generate")] }, bigger, timings);
    // 4x the pixels and 2x the steps: 8x the work at the measured rate.
    expect(stepWork(at("generate"), bigger) / stepWork(at("generate"), shape)).toBe(8);
    expect(estimate.source).toBe("measured");
    expect(estimate.seconds).toBeCloseTo(3.2, 5);
  });
});
