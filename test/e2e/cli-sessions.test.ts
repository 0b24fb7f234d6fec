import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "../support/test-mesh.js";

const CLI = fileURLToPath(new URL("../../packages/cli/dist/main.js", import.meta.url));

let mesh: TestMesh;

beforeAll(async () => {
  mesh = await startTestMesh();
});
afterAll(async () => {
  await mesh?.dispose();
});

/** Runs the dmesh CLI against the test mesh; killed if it outlives `timeoutMs`. */
function dmesh(
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args, "--url", mesh.url],
      { cwd: mesh.dir, timeout: timeoutMs },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("the README's CLI session commands against a running mesh", () => {
  it("detaches, pauses at a step boundary, shows the session, resumes and watches it to its image", async () => {
    // Long enough (200 steps at 256²) that the pause lands mid-run.
    const started = await dmesh([
      "generate",
      "a slow one",
      ...["--steps", "200", "--width", "256", "--height", "256", "--seed", "5", "--detach"],
    ]);
    expect(started.code).toBe(0);
    const id = started.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const paused = await dmesh(["pause", id]);
    expect(paused.stdout).toMatch(new RegExp(`^${id}: paused at step \\d+/200\\n$`));
    const shown = JSON.parse((await dmesh(["session", id])).stdout) as { state: string; denoiseStep: number };
    expect(shown.state).toBe("SESSION_STATE_PAUSED");
    expect(paused.stdout).toContain(`step ${shown.denoiseStep}/200`);

    expect((await dmesh(["resume", id])).stdout).toMatch(/: running at step \d+\/200/);
    const watched = await dmesh(["watch", id, "--out", "out"], 120_000);
    expect(watched.stderr).toContain(`session ${id}: completed`);
    const file = watched.stdout.trim();
    expect(file).toBe(`out/${id}-0.png`);
    expect(existsSync(join(mesh.dir, file))).toBe(true);
  }, 180_000);

  it("watch on a session that has already completed saves its stored images", async () => {
    const made = await dmesh([
      "generate",
      "two finished ones",
      ...["--steps", "3", "--width", "64", "--height", "64", "--seed", "9", "--count", "2", "--out", "made"],
    ]);
    expect(made.code).toBe(0);
    const id = /session ([0-9a-f-]{36}): completed/.exec(made.stderr)?.[1] ?? "";
    expect(id).not.toBe("");

    const watched = await dmesh(["watch", id, "--out", "later"]);
    expect(watched.code).toBe(0);
    expect(watched.stderr).toContain(`session ${id}: completed`);
    expect(watched.stdout.trim().split("\n")).toEqual([`later/${id}-0.png`, `later/${id}-1.png`]);
    for (const i of [0, 1]) {
      const generated = readFileSync(join(mesh.dir, "made", `${id}-${i}.png`));
      expect(readFileSync(join(mesh.dir, "later", `${id}-${i}.png`)).equals(generated)).toBe(true);
    }
  }, 120_000);

  it("runs a batch from the product of its axes and lists its items", async () => {
    const run = await dmesh(
      [
        "batch",
        "a castle",
        "--seeds",
        "1,2,3",
        "--guidances",
        "5,7",
        "--steps",
        "4",
        "--width",
        "64",
        "--height",
        "64",
      ],
      120_000,
    );
    expect(run.code).toBe(0);
    const summary = run.stderr + run.stdout;
    expect(summary).toMatch(/: 6 items/);
    expect(summary).toMatch(/completed, 6 completed, 0 failed/);
    const batchId = /batch ([0-9a-f-]{36}): 6 items/.exec(summary)?.[1] ?? "";
    const status = await dmesh(["batch-status", batchId]);
    expect(status.stdout.split("\n").filter((line) => /^\s+\d+\s+completed\s/.test(line))).toHaveLength(6);
  }, 180_000);
});
