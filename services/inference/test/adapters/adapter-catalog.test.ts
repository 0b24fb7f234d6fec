import { createHash } from "node:crypto";
import { mkdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readOnnxGraphIo } from "@dmesh/onnx";
import { writeSafetensors } from "@dmesh/safetensors";
import { tinyEmbeddingTensors, tinyLoraTensors } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdapterCatalog, type AdapterDirs, describeControlNet } from "../../src/adapters/index.js";
import { createRecordingLogger } from "../service/support/test-inference.js";
import { tempDir, writeControlNetSignature } from "./support.js";

let root: Awaited<ReturnType<typeof tempDir>>;
let dirs: AdapterDirs;

beforeAll(async () => {
  root = await tempDir("catalog");
  dirs = {
    loras: root.file("loras"),
    embeddings: root.file("embeddings"),
    controlnets: root.file("controlnet"),
  };
  for (const dir of Object.values(dirs)) await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dirs.loras, "style.safetensors"), tinyLoraTensors({ layout: "kohya-sdxl" }));
  await writeSafetensors(join(dirs.loras, "old-style.safetensors"), tinyLoraTensors({ layout: "kohya-sd1" }));
  // Left out, each with a warning: a truncated file, an embedding among LoRAs, a pickle.
  const good = await readFile(join(dirs.loras, "style.safetensors"));
  await writeFile(join(dirs.loras, "cut.safetensors"), good.subarray(0, good.length - 10));
  await writeSafetensors(join(dirs.loras, "lost.safetensors"), tinyEmbeddingTensors({ kind: "sd15" }));
  await writeFile(join(dirs.loras, "pickled.ckpt"), Uint8Array.from([0x80, 0x02, 0x8a, 0x0a]));
  // Not adapters at all (A1111 keeps previews and notes beside them): ignored silently.
  await writeFile(join(dirs.loras, "style.preview.png"), "not an adapter");
  await writeSafetensors(
    join(dirs.embeddings, "easy.safetensors"),
    tinyEmbeddingTensors({ kind: "sdxl", vectors: 3 }),
  );
  await writeControlNetSignature(join(dirs.controlnets, "canny-xl"), 2048);
  await writeControlNetSignature(join(dirs.controlnets, "canny-15"), 768);
  await mkdir(join(dirs.controlnets, "empty"));
  await mkdir(join(dirs.controlnets, "garbage"));
  await writeFile(join(dirs.controlnets, "garbage", "model.onnx"), "\xff\xff\xff\xff not protobuf");
});
afterAll(async () => {
  await root?.remove();
});

describe("readOnnxGraphIo", () => {
  it("reads a graph's declared inputs and outputs past its weights", async () => {
    const io = await readOnnxGraphIo(join(dirs.controlnets, "canny-xl", "model.onnx"));
    expect(io.inputs.map((i) => i.name)).toEqual([
      "sample",
      "timestep",
      "encoder_hidden_states",
      "text_embeds",
      "time_ids",
      "controlnet_cond",
      "conditioning_scale",
    ]);
    expect(io.inputs[2]).toEqual({
      name: "encoder_hidden_states",
      dataType: "float32",
      dims: ["batch", 77, 2048],
    });
    expect(io.outputs.map((o) => o.name)).toEqual(["mid_block_additional_residual"]);
  });

  it("refuses what is no ONNX model, naming the file", async () => {
    const file = join(dirs.controlnets, "garbage", "model.onnx");
    await expect(readOnnxGraphIo(file, "garbage")).rejects.toThrow(
      `model "garbage": ${file} is not an ONNX model`,
    );
  });
});

describe("AdapterCatalog", () => {
  it("lists every usable adapter with kind, family, A1111 hash and size, and names each file it leaves out", async () => {
    const logger = createRecordingLogger();
    const catalog = new AdapterCatalog(dirs, logger);
    const listed = await catalog.list();
    expect(listed.map((a) => [a.kind, a.name, a.family])).toEqual([
      ["controlnet", "canny-15", "sd1"],
      ["controlnet", "canny-xl", "sdxl"],
      ["embedding", "easy", "sdxl"],
      ["lora", "old-style", "unknown"],
      ["lora", "style", "sdxl"],
    ]);
    for (const a of listed) {
      expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
      // ControlNets: A1111's model hash of model.onnx, the 64 KiB at 1 MiB (none in a file this small).
      expect(a.shortHash).toBe(a.kind === "controlnet" ? "e3b0c442" : a.sha256.slice(0, 12));
    }
    const xl = listed.find((a) => a.name === "canny-xl");
    expect(xl?.bytes).toBe((await stat(join(dirs.controlnets, "canny-xl", "model.onnx"))).size);
    const left = logger.lines.filter((l) => l.msg === "adapter file left out of the listing");
    const named = left.map((l) => [String(l.file).slice(root.path.length + 1), String(l.err)]).sort();
    expect(named).toEqual([
      ["controlnet/empty", expect.stringContaining("model.onnx cannot be read")],
      ["controlnet/garbage", expect.stringContaining("is not an ONNX model")],
      ["loras/cut.safetensors", expect.stringContaining("cut.safetensors")],
      ["loras/lost.safetensors", "lost.safetensors: is an embedding, not a LoRA"],
      ["loras/pickled.ckpt", expect.stringContaining("pickled")],
    ]);
    // Said once per version of a file, not once per listing.
    await catalog.list();
    expect(logger.lines.filter((l) => l.msg === "adapter file left out of the listing")).toHaveLength(5);
  });

  it("filters by kind", async () => {
    const catalog = new AdapterCatalog(dirs, createRecordingLogger());
    expect((await catalog.list("lora")).map((a) => a.name)).toEqual(["old-style", "style"]);
    expect((await catalog.list("embedding")).map((a) => a.name)).toEqual(["easy"]);
    expect((await catalog.list("controlnet")).map((a) => a.name)).toEqual(["canny-15", "canny-xl"]);
  });

  it("keeps a file's hash while its size and mtime stay, and hashes it again when they change", async () => {
    const path = join(dirs.embeddings, "changing.safetensors");
    await writeSafetensors(path, tinyEmbeddingTensors({ kind: "sdxl", seed: 1 }));
    const catalog = new AdapterCatalog(dirs, createRecordingLogger());
    const hashOf = async () => (await catalog.list("embedding")).find((a) => a.name === "changing")?.sha256;
    const mtime = new Date("2026-01-02T03:04:05Z");
    await utimes(path, mtime, mtime);
    const first = await hashOf();
    // Other bytes of the same length, the mtime put back: the kept description is what the listing shows.
    await writeSafetensors(path, tinyEmbeddingTensors({ kind: "sdxl", seed: 2 }));
    await utimes(path, mtime, mtime);
    expect(await hashOf()).toBe(first);
    // A new mtime: hashed again.
    const later = new Date(mtime.getTime() + 5000);
    await utimes(path, later, later);
    const second = await hashOf();
    expect(second).not.toBe(first);
    expect(second).toBe(
      (await new AdapterCatalog(dirs, createRecordingLogger()).list("embedding")).find(
        (a) => a.name === "changing",
      )?.sha256,
    );
  });

  it("lists the other kinds, and says why, when a directory cannot be read", async () => {
    const notADir = join(dirs.loras, "style.safetensors");
    const logger = createRecordingLogger();
    const listed = await new AdapterCatalog({ ...dirs, loras: notADir }, logger).list();
    expect(listed.some((a) => a.kind === "lora")).toBe(false);
    expect(listed.filter((a) => a.kind === "controlnet").map((a) => a.name)).toEqual([
      "canny-15",
      "canny-xl",
    ]);
    expect(
      logger.lines.filter((l) => l.msg === "adapter directory cannot be read").map((l) => l.dir),
    ).toEqual([notADir]);
  });

  it("lists nothing, without failing, where the directories do not exist", async () => {
    const missing = {
      loras: root.file("no/loras"),
      embeddings: root.file("no/emb"),
      controlnets: root.file("no/cn"),
    };
    expect(await new AdapterCatalog(missing, createRecordingLogger()).list()).toEqual([]);
  });
});

describe("describeControlNet", () => {
  it("hashes model.onnx as A1111's sd_models.model_hash (the ControlNet extension's [hash]), and all of it as sha256", async () => {
    const dir = root.file("cn-large");
    const file = await writeControlNetSignature(dir, 2048, [], 1024);
    const bytes = await readFile(file);
    expect(bytes.length).toBeGreaterThan(0x110000);
    const info = await describeControlNet(dir);
    expect(info.shortHash).toBe(
      createHash("sha256").update(bytes.subarray(0x100000, 0x110000)).digest("hex").slice(0, 8),
    );
    expect(info.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
    expect(info.bytes).toBe(bytes.length);
  });

  it("tells the family from encoder_hidden_states' width, or SDXL's text_embeds", async () => {
    const dir = root.file("cn-sd2");
    await writeControlNetSignature(dir, 1024);
    expect((await describeControlNet(dir)).family).toBe("sd2");
  });

  it("refuses an ONNX model without ControlNet inputs, naming the file and the input", async () => {
    const dir = root.file("not-cn");
    await writeControlNetSignature(dir, 768, ["controlnet_cond"]);
    await expect(describeControlNet(dir)).rejects.toThrow(
      'model.onnx: is no ControlNet: it has no "controlnet_cond" input',
    );
  });
});
