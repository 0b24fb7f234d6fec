import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { writeTinyControlNet, writeTinyModel } from "@dmesh/tiny-model";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "../support/test-mesh.js";

const CLI = fileURLToPath(new URL("../../packages/cli/dist/main.js", import.meta.url));

let mesh: TestMesh;
let transport: ReturnType<typeof createGrpcTransport>;

beforeAll(async () => {
  mesh = await startTestMesh();
  // Copied in while the mesh runs: inference finds a model or ControlNet it did not know when it is asked for.
  await writeTinyModel(join(mesh.dir, "models", "tiny-sdxl-cn"), { controlResiduals: true });
  await writeTinyControlNet(join(mesh.dir, "models", "controlnet", "edges"));
  // A dark ground with a bright disc: canny finds its rim.
  const size = 96;
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      data.fill(
        (x - 40) ** 2 + (y - 50) ** 2 < 30 ** 2 ? 220 : 30,
        (y * size + x) * 3,
        (y * size + x) * 3 + 3,
      );
  await sharp(data, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toFile(join(mesh.dir, "disc.png"));
  transport = createGrpcTransport({ address: mesh.address("postprocess") });
}, 120_000);
afterAll(async () => {
  transport?.close();
  await mesh?.dispose();
});

function dmesh(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args, "--url", mesh.url],
      { cwd: mesh.dir, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** `dmesh generate` on the residual model; the saved file's bytes and pixels. */
async function generate(out: string, ...extra: string[]) {
  const run = await dmesh([
    "generate",
    "a red fox",
    ...["--model", "tiny-sdxl-cn", "--steps", "4", "--width", "64", "--height", "64", "--seed", "3"],
    ...["--out", out, ...extra],
  ]);
  expect(run.code, run.stderr).toBe(0);
  const file = readFileSync(join(mesh.dir, run.stdout.trim().split("\n")[0] as string));
  const pixels = await sharp(file).removeAlpha().raw().toBuffer();
  return { file, pixels };
}

describe("ControlNet through the mesh (CLI → orchestrator → inference → postprocess)", () => {
  it("a --control unit steers the image, and the image's infotext carries it, which ReadMetadata reads back", async () => {
    const none = await generate("plain");
    const zero = await generate("zero", "--control", "edges:disc.png:0", "--control-preprocess", "canny");
    const steered = await generate(
      "steered",
      ...["--control", "edges:disc.png:0.8:0:0.75", "--control-preprocess", "canny"],
      ...["--control-thresholds", "60:120", "--control-resize", "fill"],
    );
    expect(zero.pixels.equals(none.pixels)).toBe(true);
    expect(steered.pixels.equals(none.pixels)).toBe(false);

    const postprocess = createClient(PostprocessService, transport);
    const read = await postprocess.readMetadata({
      image: { encoding: ImageEncoding.PNG, data: steered.file },
    });
    expect(read.parameters?.extra["ControlNet 0"]).toBe(
      "Module: canny, Model: edges [e3b0c442], Weight: 0.8, Resize Mode: Resize and Fill, Low Vram: False, Processor Res: 512, Threshold A: 60, Threshold B: 120, Guidance Start: 0.0, Guidance End: 0.75, Pixel Perfect: False, Control Mode: Balanced",
    );
    expect(read.infotext).toContain('ControlNet 0: "Module: canny, Model: edges [e3b0c442], Weight: 0.8,');
    const [unit] = read.parameters?.controlNets ?? [];
    expect(unit?.model).toBe("edges");
    expect(unit?.preprocessor).toMatchObject({
      name: "canny",
      resolution: 512,
      thresholdA: 60,
      thresholdB: 120,
    });
    expect(unit?.resizeMode).toBe(ControlResizeMode.RESIZE_AND_FILL);
    expect([unit?.conditioningScale, unit?.guidanceStart, unit?.guidanceEnd]).toEqual([
      Math.fround(0.8),
      0,
      0.75,
    ]);
  }, 240_000);

  it("runs through the hires-fix workflow: both generate passes carry the unit, the second at the upscaled size", async () => {
    const run = await dmesh([
      "generate",
      "a red fox",
      ...[
        "--model",
        "tiny-sdxl-cn",
        "--workflow",
        "txt2img-hires",
        "--steps",
        "4",
        "--width",
        "64",
        "--height",
        "64",
      ],
      ...["--control", "edges:disc.png", "--control-preprocess", "canny", "--out", "hires"],
    ]);
    expect(run.code, run.stderr).toBe(0);
    const file = readFileSync(join(mesh.dir, run.stdout.trim().split("\n")[0] as string));
    const { width, height } = await sharp(file).metadata();
    expect([width, height]).toEqual([128, 128]);
    const read = await createClient(PostprocessService, transport).readMetadata({
      image: { encoding: ImageEncoding.PNG, data: file },
    });
    expect(read.parameters?.controlNets.map((u) => u.model)).toEqual(["edges"]);
  }, 240_000);

  it("a ControlNet on a model whose UNet takes no residuals fails the session, saying why", async () => {
    const run = await dmesh([
      "generate",
      "a red fox",
      ...["--steps", "2", "--width", "64", "--height", "64", "--control", "edges:disc.png"],
    ]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/unet without ControlNet residual inputs/);
  }, 120_000);
});
