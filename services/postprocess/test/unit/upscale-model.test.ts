import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ModelContractError } from "@dmesh/onnx";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RawImage } from "../../src/image/raw-image.js";
import { ModelUpscaler } from "../../src/upscale/model-upscaler.js";
import { loadUpscaleModel, type UpscaleModel } from "../../src/upscale/upscale-model.js";
import { upscaleTiled } from "../../src/upscale/upscale-tiled.js";
import { type ModelDirs, writeModelDirs } from "../support/model-dirs.js";
import { gradientImage } from "../support/test-images.js";

let dirs: ModelDirs;
let x2: UpscaleModel;

beforeAll(async () => {
  dirs = await writeModelDirs();
  x2 = await loadUpscaleModel(join(dirs.upscaleRoot, "tiny-x2"), "tiny-x2");
});
afterAll(async () => {
  await x2?.release();
  dirs?.remove();
});

/** A scene with edges and texture in every tile, so seams would show. */
function scene(width: number, height: number, channels: 3 | 4 = 3): RawImage {
  const image = gradientImage(width, height, channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if ((Math.floor(x / 9) + Math.floor(y / 7)) % 2 === 0) image.data[(y * width + x) * channels] = 230;
    }
  }
  return image;
}

function maxDifference(a: Uint8Array, b: Uint8Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

describe("loading an upscale model by contract", () => {
  it("reads the scale from config.json, or learns it from a probe run when there is none", async () => {
    expect([x2.scale, x2.fixedSize, x2.sizeMultiple]).toEqual([2, undefined, 1]);
    const bare = join(dirs.upscaleRoot, "bare-x4");
    mkdirSync(bare, { recursive: true });
    // A real export is often just one file named after the model.
    copyFileSync(join(dirs.upscaleRoot, "tiny-x4", "model.onnx"), join(bare, "4x_Tiny.onnx"));
    const model = await loadUpscaleModel(bare, "bare-x4");
    expect(model.scale).toBe(4);
    await model.release();
    rmSync(bare, { recursive: true });
  });

  it("refuses a model whose config.json contradicts it, or whose input is no NCHW image, naming model and tensor", async () => {
    const wrongScale = join(dirs.upscaleRoot, "wrong-scale");
    mkdirSync(wrongScale, { recursive: true });
    copyFileSync(join(dirs.upscaleRoot, "tiny-x2", "model.onnx"), join(wrongScale, "model.onnx"));
    writeFileSync(join(wrongScale, "config.json"), JSON.stringify({ scale: 4 }));
    await expect(loadUpscaleModel(wrongScale, "wrong-scale")).rejects.toThrow(
      'model "wrong-scale": config.json says scale 4 but the model upscales ×2',
    );

    // A classifier is a real ONNX model with an image input, but its output is no image.
    const classifier = join(dirs.upscaleRoot, "classifier");
    mkdirSync(classifier, { recursive: true });
    copyFileSync(join(dirs.safetyDir, "model.onnx"), join(classifier, "model.onnx"));
    const error = await loadUpscaleModel(classifier, "classifier").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelContractError);
    expect((error as Error).message).toMatch(/^model "classifier": output "logits" is \[1, 2\]/);

    const named = join(dirs.upscaleRoot, "bad-name");
    mkdirSync(named, { recursive: true });
    copyFileSync(join(dirs.upscaleRoot, "tiny-x2", "model.onnx"), join(named, "model.onnx"));
    writeFileSync(join(named, "config.json"), JSON.stringify({ input_name: "image" }));
    await expect(loadUpscaleModel(named, "bad-name")).rejects.toThrow(
      'model "bad-name": config.json input_name "image" is not an input (it has "input")',
    );

    const corrupt = join(dirs.upscaleRoot, "corrupt");
    mkdirSync(corrupt, { recursive: true });
    writeFileSync(join(corrupt, "model.onnx"), Buffer.from("not an onnx model"));
    await expect(loadUpscaleModel(corrupt, "corrupt")).rejects.toThrow(
      /model "corrupt": .*cannot be loaded by onnxruntime/,
    );
    for (const dir of [wrongScale, classifier, named, corrupt]) rmSync(dir, { recursive: true });
  });
});

describe("tiled super-resolution", () => {
  it("matches one whole-image run closely when tiles overlap and blend, and beats unblended tiles", async () => {
    const image = scene(150, 110);
    const whole = await upscaleTiled(x2, image, { tileSize: 512, overlap: 0 });
    expect([whole.width, whole.height, whole.channels]).toEqual([300, 220, 3]);
    const blended = await upscaleTiled(x2, image, { tileSize: 48, overlap: 16 });
    const seams = await upscaleTiled(x2, image, { tileSize: 48, overlap: 0 });
    const blendedError = maxDifference(blended.data, whole.data);
    const seamError = maxDifference(seams.data, whole.data);
    // The tiny net sees 7 pixels around each output pixel; 16 shared pixels hide the tile edges up to
    // rounding (unblended tiles measured 20 levels off at their seams).
    expect(blendedError).toBeLessThanOrEqual(1);
    expect(seamError).toBeGreaterThan(blendedError);
  });

  it("pads tiles to a fixed input size or a size multiple with edge pixels, and crops the padding off", async () => {
    const image = scene(75, 53);
    const whole = await upscaleTiled(x2, image, { tileSize: 512, overlap: 0 });
    // The same real model, run as an export with a fixed 32x32 input, or one needing sides in 8s, would be.
    const fixed = await upscaleTiled({ ...x2, fixedSize: { height: 32, width: 32 } }, image, {
      tileSize: 256,
      overlap: 8,
    });
    const multiple = await upscaleTiled({ ...x2, sizeMultiple: 8 }, image, { tileSize: 30, overlap: 8 });
    for (const out of [fixed, multiple]) {
      expect([out.width, out.height]).toEqual([150, 106]);
      // Away from the image's own border (where edge padding and the net's zero padding differ), the
      // tiles agree with the whole-image run.
      let max = 0;
      for (let y = 16; y < 106 - 16; y++) {
        for (let x = 16; x < 150 - 16; x++) {
          for (let c = 0; c < 3; c++) {
            const i = (y * 150 + x) * 3 + c;
            max = Math.max(max, Math.abs((out.data[i] as number) - (whole.data[i] as number)));
          }
        }
      }
      expect(max).toBeLessThanOrEqual(1);
    }
  });

  it("stops between tiles once the signal aborts", async () => {
    const abort = new AbortController();
    let runs = 0;
    const counting: UpscaleModel = {
      ...x2,
      runTile: async (pixels, h, w) => {
        runs++;
        if (runs === 2) abort.abort(new Error("cancelled by the client"));
        return x2.runTile(pixels, h, w);
      },
    };
    await expect(
      upscaleTiled(counting, scene(128, 128), { tileSize: 32, overlap: 8, signal: abort.signal }),
    ).rejects.toThrow("cancelled by the client");
    // 25 tiles in all; the third never starts.
    expect(runs).toBe(2);
  });
});

describe("ModelUpscaler", () => {
  it("runs as many passes as the factor needs, resizes an overshoot down, and keeps alpha", async () => {
    const upscaler = new ModelUpscaler({
      modelsDir: dirs.upscaleRoot,
      cacheSize: 2,
      tileSize: 64,
      tileOverlap: 8,
    });
    try {
      const image = scene(40, 30, 4);
      const x4by2 = await upscaler.upscale(image, { model: "tiny-x2", factor: 4, maxOutputPixels: 1 << 24 });
      expect([x4by2.width, x4by2.height, x4by2.channels]).toEqual([160, 120, 4]);
      // Alpha is the source's, resized: the bottom half of the gradient image is half transparent.
      expect(x4by2.data[3]).toBe(255);
      expect(x4by2.data[(119 * 160 + 5) * 4 + 3]).toBe(128);
      const x2by4 = await upscaler.upscale(scene(40, 30), {
        model: "tiny-x4",
        factor: 2,
        maxOutputPixels: 1 << 24,
      });
      expect([x2by4.width, x2by4.height, x2by4.channels]).toEqual([80, 60, 3]);
      expect(await upscaler.peakScale("tiny-x4", 2)).toBe(4);
      expect(await upscaler.peakScale("tiny-x2", 4)).toBe(4);
      await expect(
        upscaler.upscale(scene(40, 30), { model: "tiny-x4", factor: 0, maxOutputPixels: 100 * 100 }),
      ).rejects.toThrow("upscale.factor: gives 160x120 (19200 pixels); the limit is 10000");
    } finally {
      await upscaler.close();
    }
  });

  it("keeps at most cacheSize models loaded, least recently used out first, and names unknown models", async () => {
    const bare = join(dirs.upscaleRoot, "third");
    mkdirSync(bare, { recursive: true });
    copyFileSync(join(dirs.upscaleRoot, "tiny-x2", "model.onnx"), join(bare, "model.onnx"));
    const upscaler = new ModelUpscaler({
      modelsDir: dirs.upscaleRoot,
      cacheSize: 2,
      tileSize: 64,
      tileOverlap: 8,
    });
    try {
      const image = scene(16, 16);
      const run = (model: string) => upscaler.upscale(image, { model, factor: 0, maxOutputPixels: 1 << 20 });
      await Promise.all([run("tiny-x2"), run("tiny-x2"), run("tiny-x4")]);
      expect(upscaler.loaded()).toEqual(["tiny-x2", "tiny-x4"]);
      await run("tiny-x2");
      await run("third");
      expect(upscaler.loaded()).toEqual(["tiny-x2", "third"]);
      // The evicted model was released, and loads again when asked for.
      expect((await run("tiny-x4")).width).toBe(64);
      await expect(run("missing")).rejects.toThrow(
        'upscale.model: no model "missing" on this service (it has third, tiny-x2, tiny-x4)',
      );
      await expect(run("../safety")).rejects.toThrow("upscale.model: must name a model directory");
    } finally {
      await upscaler.close();
      rmSync(bare, { recursive: true });
    }
  });
});
