import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinySafetyClassifier, writeTinyUpscaler } from "../src/index.js";
import {
  allFinite,
  floats,
  floatTensor,
  ioOf,
  maxAbsDiff,
  openSession,
  type ort,
  tempDir,
  wave,
} from "./helpers.js";

describe("the tiny postprocess models", () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    root = await tempDir("postprocess");
  });
  afterAll(() => root.remove());

  it.each([2, 4] as const)("the ×%i upscaler enlarges an image and stays close to it", async (scale) => {
    const dir = join(root.path, `up${scale}`);
    const manifest = await writeTinyUpscaler(dir, { scale });
    const session = await openSession(join(dir, "model.onnx"));
    expect(ioOf(session.inputMetadata)).toEqual([
      { name: "input", type: "float32", dims: ["batch_size", 3, "height", "width"] },
    ]);
    expect(ioOf(session.outputMetadata)).toEqual([
      { name: "output", type: "float32", dims: ["batch_size", 3, `height * ${scale}`, `width * ${scale}`] },
    ]);
    expect(manifest.models["model.onnx"]?.outputs[0]?.name).toBe("output");
    const [h, w] = [12, 20];
    const image = Float32Array.from(wave(3 * h * w), (v) => 0.5 + 0.4 * v);
    const out = (await session.run({ input: floatTensor(image, [1, 3, h, w]) })).output as ort.Tensor;
    expect(out.dims).toEqual([1, 3, h * scale, w * scale]);
    expect(allFinite(out)).toBe(true);
    // Each output pixel stays near the input pixel it came from.
    const px = floats(out);
    let err = 0;
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h * scale; y++)
        for (let x = 0; x < w * scale; x++) {
          const source = image[(c * h + Math.floor(y / scale)) * w + Math.floor(x / scale)] as number;
          err += Math.abs((px[(c * h * scale + y) * w * scale + x] as number) - source);
        }
    expect(err / px.length).toBeLessThan(0.15);
    expect(JSON.parse(await readFile(join(dir, "config.json"), "utf8"))).toMatchObject({
      scale,
      model_type: "esrgan",
    });
  });

  it("the safety classifier gives [b, 2] logits that depend on the pixels", async () => {
    const dir = join(root.path, "safety");
    await writeTinySafetyClassifier(dir);
    const session = await openSession(join(dir, "model.onnx"));
    expect(ioOf(session.inputMetadata)).toEqual([
      { name: "pixel_values", type: "float32", dims: ["batch_size", 3, 224, 224] },
    ]);
    expect(ioOf(session.outputMetadata)).toEqual([
      { name: "logits", type: "float32", dims: ["batch_size", 2] },
    ]);
    const size = 3 * 224 * 224;
    const pixels = new Float32Array(2 * size);
    pixels.set(wave(size), 0);
    pixels.set(wave(size, 1, 2), size);
    const logits = (await session.run({ pixel_values: floatTensor(pixels, [2, 3, 224, 224]) }))
      .logits as ort.Tensor;
    expect(logits.dims).toEqual([2, 2]);
    const [a0, a1, b0, b1] = floats(logits) as unknown as [number, number, number, number];
    expect(a0).toBeGreaterThan(a1); // leans to "normal"
    expect(Math.abs(a0 - b0) + Math.abs(a1 - b1)).toBeGreaterThan(1e-4);
    const other = (await session.run({ pixel_values: floatTensor(pixels.slice(size), [1, 3, 224, 224]) }))
      .logits as ort.Tensor;
    expect(maxAbsDiff(other, floatTensor(floats(logits).slice(2), [1, 2]))).toBeLessThan(1e-5);
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    expect(config.id2label).toEqual({ "0": "normal", "1": "nsfw" });
    const preprocessor = JSON.parse(await readFile(join(dir, "preprocessor_config.json"), "utf8"));
    expect(preprocessor).toMatchObject({ image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] });
  });

  it("rejects an unsupported scale naming the field", async () => {
    await expect(writeTinyUpscaler(join(root.path, "bad"), { scale: 3 as never })).rejects.toMatchObject({
      field: "scale",
    });
  });
});
