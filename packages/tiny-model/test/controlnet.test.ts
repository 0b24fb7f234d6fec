import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  generateTinyModel,
  resolveTinyModelOptions,
  writeTinyControlNet,
  writeTinyModel,
} from "../src/index.js";
import { floats, floatTensor, ioOf, openSession, type ort, tempDir, wave } from "./helpers.js";

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs((a[i] as number) - (b[i] as number)));
  return d;
}

const RESIDUALS = [0, 1, 2, 3].map((i) => `down_block_${i}_additional_residual`);
const MID = "mid_block_additional_residual";

describe("the tiny ControlNet and the UNet that takes its residuals", () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  let controlnet: ort.InferenceSession;
  let unet: ort.InferenceSession;
  beforeAll(async () => {
    root = await tempDir("controlnet");
    await writeTinyModel(join(root.path, "model"), { controlResiduals: true });
    await writeTinyControlNet(join(root.path, "cn"));
    controlnet = await openSession(join(root.path, "cn", "model.onnx"));
    unet = await openSession(join(root.path, "model", "unet", "model.onnx"));
  });
  afterAll(() => root.remove());

  it("has the split export's inputs and one residual per skip connection, plus the mid block's", () => {
    expect(ioOf(controlnet.inputMetadata).map((io) => io.name)).toEqual([
      "sample",
      "timestep",
      "encoder_hidden_states",
      "text_embeds",
      "time_ids",
      "controlnet_cond",
      "conditioning_scale",
    ]);
    expect(ioOf(controlnet.inputMetadata).at(-2)?.dims).toEqual([
      "batch_size",
      3,
      "image_height",
      "image_width",
    ]);
    const outputs = ioOf(controlnet.outputMetadata);
    expect(outputs.map((io) => io.name)).toEqual([...RESIDUALS, MID]);
    // conv_in and the first level at 16 channels, the second level and the mid block at 32.
    expect(outputs.map((io) => io.dims[1])).toEqual([16, 16, 16, 32, 32]);
    const unetInputs = ioOf(unet.inputMetadata);
    for (const out of outputs)
      expect(unetInputs.find((io) => io.name === out.name)?.dims.slice(0, 2)).toEqual([
        "batch_size",
        out.dims[1],
      ]);
  });

  it("scales its residuals by conditioning_scale, and a control map changes the UNet's prediction", async () => {
    const [b, h, w] = [2, 8, 12];
    const shared = {
      sample: floatTensor(wave(b * 4 * h * w), [b, 4, h, w]),
      timestep: floatTensor(Float32Array.of(500), [1]),
      encoder_hidden_states: floatTensor(wave(b * 77 * 96, 1, 3), [b, 77, 96]),
      text_embeds: floatTensor(wave(b * 48, 1, 5), [b, 48]),
      time_ids: floatTensor(
        Float32Array.from({ length: b * 6 }, () => 64),
        [b, 6],
      ),
    };
    const run = async (scale: number, seed = 1) =>
      controlnet.run({
        ...shared,
        controlnet_cond: floatTensor(
          Float32Array.from(wave(b * 3 * h * 8 * w * 8, 1, seed), (v) => 0.5 + 0.5 * v),
          [b, 3, h * 8, w * 8],
        ),
        conditioning_scale: floatTensor(Float32Array.of(scale), []),
      });
    const one = await run(1);
    const half = await run(0.5);
    const zero = await run(0);
    expect((one[MID] as ort.Tensor).dims).toEqual([b, 32, h / 2, w / 2]);
    for (const name of [...RESIDUALS, MID]) {
      const full = floats(one[name] as ort.Tensor);
      expect(
        maxDiff(
          floats(half[name] as ort.Tensor),
          full.map((v) => v * 0.5),
        ),
      ).toBeLessThan(1e-6);
      expect(floats(zero[name] as ort.Tensor).every((v) => v === 0)).toBe(true);
    }
    const predict = async (residuals: ort.InferenceSession.OnnxValueMapType) =>
      floats((await unet.run({ ...shared, ...residuals })).out_sample as ort.Tensor);
    const plain = await predict(zero);
    const controlled = await predict(one);
    const other = await predict(await run(1, 9));
    expect(maxDiff(plain, controlled)).toBeGreaterThan(1e-3);
    expect(maxDiff(controlled, other)).toBeGreaterThan(1e-3);
  });

  it("takes residual inputs only when asked, leaving the default UNet's bytes as they were", () => {
    const plain = generateTinyModel(resolveTinyModelOptions({}));
    const withResiduals = generateTinyModel(resolveTinyModelOptions({ controlResiduals: true }));
    const unetOf = (c: typeof plain) => c.contents.models["unet/model.onnx"]?.inputs.map((io) => io.name);
    expect(unetOf(plain)).toEqual(["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"]);
    expect(unetOf(withResiduals)).toEqual([
      "sample",
      "timestep",
      "encoder_hidden_states",
      "text_embeds",
      "time_ids",
      ...RESIDUALS,
      MID,
    ]);
    const file = (c: typeof plain, path: string) => c.contents.files.find((f) => f.path === path)?.content;
    expect(file(withResiduals, "text_encoder/model.onnx")).toEqual(file(plain, "text_encoder/model.onnx"));
  });
});
