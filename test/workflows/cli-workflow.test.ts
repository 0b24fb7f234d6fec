import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { TestMesh } from "../faults/support/test-mesh.js";

// `dmesh workflow …` and `dmesh generate --workflow … --input …` as a user runs them, against a real mesh.
const REPO_ROOT = join(import.meta.dirname, "..", "..");
const EXAMPLE = join(REPO_ROOT, "examples", "workflows", "hires-sharpen.yaml");
let mesh: TestMesh;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "dmesh-cli-workflow-"));
  mesh = await TestMesh.start();
}, 120_000);
afterAll(async () => {
  await mesh?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** Runs the CLI; its stdout and stderr together, and its exit code. */
async function dmesh(...args: string[]): Promise<{ output: string; code: number }> {
  const url = `http://${mesh.orchestrator.address}`;
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [join(REPO_ROOT, "packages", "cli", "dist", "main.js"), ...args, "--url", url],
      { cwd: work, timeout: 60_000 },
    );
    return { output: stdout + stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { output: e.stdout + e.stderr, code: e.code };
  }
}

describe("dmesh workflow", () => {
  it("creates a workflow from YAML, runs it with an input, shows it, updates it from JSON and deletes it", async () => {
    expect(await dmesh("workflow", "create", EXAMPLE)).toEqual({
      output: "workflow hires-sharpen version 1\n",
      code: 0,
    });

    const run = await dmesh(
      "generate",
      "a lighthouse at dusk",
      "--workflow",
      "hires-sharpen",
      "--input",
      "scale=2",
      "--seed",
      "3",
      "--steps",
      "4",
      "--width",
      "64",
      "--height",
      "64",
      "--out",
      "lighthouse.webp",
    );
    expect(run.code, run.output).toBe(0);
    expect(run.output).toMatch(/session [0-9a-f-]{36}: completed/);
    const webp = readFileSync(join(work, "lighthouse.webp"));
    expect(webp.subarray(0, 4).toString()).toBe("RIFF");
    expect(webp.subarray(8, 12).toString()).toBe("WEBP");

    const shown = await dmesh("workflow", "show", "hires-sharpen");
    expect(shown.code).toBe(0);
    const described = parseYaml(shown.output) as {
      version: number;
      usageCount: number;
      estimate: { estimateSource: string };
    };
    expect([described.version, described.usageCount]).toEqual([1, 1]);

    // The same definition as JSON, with a lighter hires pass: version 2.
    const json = parseYaml(readFileSync(EXAMPLE, "utf8")) as {
      steps: { params?: Record<string, unknown> }[];
    };
    json.steps[1] = { ...json.steps[1], params: { upscaler: "lanczos", strength: 0.3 } };
    writeFileSync(join(work, "v2.json"), JSON.stringify(json));
    expect(await dmesh("workflow", "update", "v2.json")).toEqual({
      output: "workflow hires-sharpen version 2\n",
      code: 0,
    });
    expect((await dmesh("workflow", "show", "hires-sharpen", "--version", "1", "--json")).output).toContain(
      '"strength": 0.5',
    );

    const badInput = await dmesh(
      "generate",
      "x",
      "--workflow",
      "hires-sharpen",
      "--input",
      "scale=3",
      "--steps",
      "4",
      "--width",
      "64",
      "--height",
      "64",
    );
    expect(badInput.code).toBe(1);
    expect(badInput.output).toContain("dmesh: InvalidArgument: inputs.scale: must be one of 1, 2, 4, got 3");

    expect(await dmesh("workflow", "delete", "hires-sharpen")).toEqual({
      output: "workflow hires-sharpen deleted\n",
      code: 0,
    });
    expect((await dmesh("workflow", "show", "hires-sharpen")).output).toContain("dmesh: NotFound:");
  });
});
