import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findTinyModel } from "../src/index.js";
import { tempDir } from "./helpers.js";

const MAIN = join(import.meta.dirname, "../dist/main.js");

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [MAIN, ...args], {
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

describe("dmesh-tiny-model", () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    if (!existsSync(MAIN))
      throw new Error(`${MAIN} is missing: build first (npx tsc -b packages/tiny-model)`);
    root = await tempDir("cli");
  });
  afterAll(() => root?.remove());

  it("writes a model, prints what it wrote, then skips it unless --force", async () => {
    const dir = join(root.path, "model");
    const first = await cli(dir, "--kind", "sdxl", "--seed", "42");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(
      /^wrote tiny sdxl model \(seed 42\) to .* in \d+ ms: 20 files, [\d.]+ MiB$/m,
    );
    expect(first.stdout).toMatch(/^ {2}unet\/model\.onnx +[\d.]+ MiB {2}sha256 [0-9a-f]{16}$/m);
    expect(await findTinyModel(dir, { kind: "sdxl", seed: 42 })).toBeDefined();

    const again = await cli(dir, "--kind", "sdxl", "--seed", "42");
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(
      /^skipped: .* already holds a complete tiny sdxl model \(seed 42\); --force rewrites it$/m,
    );

    const forced = await cli(dir, "--seed", "42", "--force");
    expect(forced.stdout).toMatch(/^wrote tiny sdxl model/);

    const other = await cli(dir, "--kind", "sd15", "--timestep-type", "int64", "--unet-in-channels", "9");
    expect(other.stdout).toMatch(/^wrote tiny sd15 model \(seed 42\)/);
    const manifest = await findTinyModel(dir, { kind: "sd15", timestepType: "int64", unetInChannels: 9 });
    expect(manifest?.models["unet/model.onnx"]?.inputs[0]?.dims).toEqual([
      "batch_size",
      9,
      "height",
      "width",
    ]);
  });

  it("writes the upscaler and the safety classifier", async () => {
    const up = await cli(join(root.path, "up"), "--artifact", "upscaler", "--scale", "4");
    expect(up.stdout).toMatch(/^wrote tiny ×4 upscaler \(seed 42\)/);
    const safety = await cli(join(root.path, "safety"), "--artifact", "safety-classifier");
    expect(safety.stdout).toMatch(/^wrote tiny safety classifier \(seed 42\)/);
    expect(existsSync(join(root.path, "safety", "preprocessor_config.json"))).toBe(true);
  });

  it("rejects bad arguments with exit code 2 and a message naming them", async () => {
    const bad = await cli(join(root.path, "bad"), "--kind", "sd3");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('kind: must be one of "sdxl", "sdxl-refiner", "sd15"');
    const seed = await cli(join(root.path, "bad"), "--seed", "x");
    expect(seed.code).toBe(2);
    expect(seed.stderr).toContain("--seed must be a non-negative integer");
    const none = await cli();
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("expected exactly one <dir>");
    expect(existsSync(join(root.path, "bad"))).toBe(false);
    const help = await cli("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("usage: dmesh-tiny-model <dir>");
  });
});
