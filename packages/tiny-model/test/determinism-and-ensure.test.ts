import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureTinyModel, findTinyModel, MANIFEST_FILE, writeTinyModel } from "../src/index.js";
import { tempDir } from "./helpers.js";

describe("generation is deterministic", () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    root = await tempDir("determinism");
  });
  afterAll(() => root.remove());

  it("same seed and options → byte-identical files; another seed → other weights, same metadata", async () => {
    const a = await writeTinyModel(join(root.path, "a"), { seed: 42 });
    const b = await writeTinyModel(join(root.path, "b"), { seed: 42 });
    expect(b.files).toEqual(a.files);
    expect(await readFile(join(root.path, "b", MANIFEST_FILE))).toEqual(
      await readFile(join(root.path, "a", MANIFEST_FILE)),
    );

    const c = await writeTinyModel(join(root.path, "c"), { seed: 43 });
    const hashes = (m: typeof a) => new Map(m.files.map((f) => [f.path, f.sha256]));
    const [ha, hc] = [hashes(a), hashes(c)];
    for (const [path, hash] of ha) {
      if (path.endsWith(".onnx")) expect(hc.get(path), path).not.toBe(hash);
      else expect(hc.get(path), path).toBe(hash); // configs and tokenizers do not depend on the seed
    }
  });
});

describe("ensureTinyModel", () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    root = await tempDir("ensure");
  });
  afterAll(() => root.remove());

  it("skips a complete model with the same options and rewrites a changed or damaged one", async () => {
    const dir = join(root.path, "model");
    expect((await ensureTinyModel(dir)).written).toBe(true);
    expect((await ensureTinyModel(dir)).written).toBe(false);
    expect((await ensureTinyModel(dir, { seed: 42, kind: "sdxl" })).written).toBe(false);
    expect((await ensureTinyModel(dir, {}, { force: true })).written).toBe(true);

    await writeFile(join(dir, "unet/model.onnx"), "damaged");
    expect(await findTinyModel(dir)).toBeUndefined();
    expect((await ensureTinyModel(dir)).written).toBe(true);
    expect(await findTinyModel(dir)).toBeDefined();

    expect((await ensureTinyModel(dir, { seed: 1 })).written).toBe(true);
    expect(await findTinyModel(dir, { seed: 42 })).toBeUndefined();
    expect(await findTinyModel(dir, { seed: 1 })).toBeDefined();
  });

  it("removes what an earlier generation wrote and this one does not", async () => {
    const dir = join(root.path, "switch");
    await writeTinyModel(dir, { kind: "sdxl" });
    expect(existsSync(join(dir, "text_encoder_2/model.onnx"))).toBe(true);
    const manifest = await writeTinyModel(dir, { kind: "sd15" });
    expect(existsSync(join(dir, "text_encoder_2"))).toBe(false);
    expect(existsSync(join(dir, "tokenizer_2"))).toBe(false);
    expect(manifest.files.every((f) => existsSync(join(dir, f.path)))).toBe(true);
  });

  it("refuses a non-empty directory it did not write, unless forced", async () => {
    const dir = join(root.path, "foreign");
    await mkdir(join(dir, "unet"), { recursive: true });
    await writeFile(join(dir, "unet/model.onnx"), "someone's real model");
    await expect(ensureTinyModel(dir)).rejects.toMatchObject({ name: "ModelDirectoryError", field: "dir" });
    expect(await readFile(join(dir, "unet/model.onnx"), "utf8")).toBe("someone's real model");
    expect((await ensureTinyModel(dir, {}, { force: true })).written).toBe(true);
    expect(await findTinyModel(dir)).toBeDefined();
  });
});
