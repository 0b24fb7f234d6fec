import { cp, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GenerationMode } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, failure, generate, rawImage, rawMask, smallSpec } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

const VARIANTS = {
  sdxl: { kind: "sdxl" },
  "sdxl-refiner": { kind: "sdxl-refiner" },
  sd15: { kind: "sd15" },
  "int64-timestep": { timestepType: "int64" },
  "scalar-timestep": { timestepShape: "scalar" },
  "int64-ids": { inputIdsType: "int64" },
  "latent-sample-encoder": { vaeEncoderOutput: "latent_sample" },
  "inpaint-9ch": { unetInChannels: 9 },
  "fp16-unet": { unetPrecision: "float16" },
} as const;

let service: TestInference;

beforeAll(async () => {
  service = await startTestInference({ ...VARIANTS, good: {}, spare: { kind: "sd15" } }, {}, async (dir) => {
    // Broken suites, each made from a good one: the service must name what is wrong and keep serving.
    await cp(join(dir, "good"), join(dir, "truncated-unet"), { recursive: true });
    await truncate(join(dir, "truncated-unet", "unet", "model.onnx"), 200);
    await cp(join(dir, "good"), join(dir, "garbage-vae"), { recursive: true });
    await writeFile(join(dir, "garbage-vae", "vae_decoder", "model.onnx"), "this is not a protobuf");
    await cp(join(dir, "good"), join(dir, "no-unet"), { recursive: true });
    await rm(join(dir, "no-unet", "unet"), { recursive: true });
    await cp(join(dir, "good"), join(dir, "no-merges"), { recursive: true });
    await rm(join(dir, "no-merges", "tokenizer_2", "merges.txt"));
    // The refiner's UNet takes 64-wide text states; SDXL's two encoders give 32 + 64.
    await cp(join(dir, "good"), join(dir, "width-mismatch"), { recursive: true });
    await rm(join(dir, "width-mismatch", "unet"), { recursive: true });
    await cp(join(dir, "sdxl-refiner", "unet"), join(dir, "width-mismatch", "unet"), { recursive: true });
  });
});
afterAll(async () => {
  await service?.close();
});

describe("export variants", () => {
  it("feeds an fp16 UNet float16 and reads its float16 output: the image matches the fp32 export's to rounding", async () => {
    const request = (base: string) => ({ spec: smallSpec({ models: { base }, params: { seed: 9n } }) });
    const half = await generate(service, request("fp16-unet"));
    const full = await generate(service, request("sdxl"));
    const a = half.images[0]?.image?.data ?? new Uint8Array();
    const b = full.images[0]?.image?.data ?? new Uint8Array();
    expect(a.length).toBe(b.length);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
    // Same weights (same seed) computed in float32 between float16 casts: only the I/O rounding differs.
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(4); // measured: 1 level
  });

  it.each(Object.keys(VARIANTS))("%s loads and generates an image of the requested size", async (id) => {
    const mode =
      id === "inpaint-9ch"
        ? GenerationMode.INPAINT
        : id === "latent-sample-encoder"
          ? GenerationMode.IMG2IMG
          : GenerationMode.TXT2IMG;
    const inputs =
      mode === GenerationMode.TXT2IMG
        ? {}
        : {
            initImage: rawImage(64, 64),
            ...(mode === GenerationMode.INPAINT
              ? { maskImage: rawMask(64, 64, { x0: 16, y0: 16, x1: 48, y1: 48 }) }
              : {}),
          };
    const events = await generate(service, { spec: smallSpec({ models: { base: id }, mode, ...inputs }) });
    expect(events.done?.model).toBe(id);
    expect(events.images).toHaveLength(1);
    const image = events.images[0]?.image;
    expect([image?.width, image?.height, image?.data.length]).toEqual([64, 64, 64 * 64 * 3]);
    // A real picture: not one flat colour.
    expect(new Set(image?.data).size).toBeGreaterThan(10);
  });

  it("lists every suite, the unusable ones with what is wrong", async () => {
    const { models } = await service.models.listModels({});
    const ids = models.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining([...Object.keys(VARIANTS), "no-unet", "no-merges"]));
    const inpainting = Object.fromEntries(models.map((m) => [m.id, m.inpainting]));
    expect([inpainting["inpaint-9ch"], inpainting.sdxl]).toEqual([true, false]);
  });
});

describe("broken suites fail clearly and the service keeps serving", () => {
  it.each([
    ["truncated-unet", /model "truncated-unet": cannot load unet/],
    ["garbage-vae", /model "garbage-vae": cannot load vae_decoder/],
    ["no-unet", /model "no-unet": missing .*unet\/model\.onnx/],
    ["no-merges", /model "no-merges": missing .*tokenizer_2\/merges\.txt/],
    [
      "width-mismatch",
      /model "width-mismatch": the width of unet input "encoder_hidden_states" is 64 but the text encoders' hidden state width \(text_encoder 32 \+ text_encoder_2 64\) is 96/,
    ],
  ])("%s: FAILED_PRECONDITION naming the model and the file or input", async (id, message) => {
    const err = await failure(generate(service, { spec: smallSpec({ models: { base: id } }) }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.field).toBe("models.base");
    expect(err.message).toMatch(message);
    const ok = await generate(service, { spec: smallSpec({ models: { base: "spare" } }) });
    expect(ok.images).toHaveLength(1);
  });

  it("a broken refiner is reported against models.refiner", async () => {
    const err = await failure(
      generate(service, { spec: smallSpec({ models: { base: "good", refiner: "truncated-unet" } }) }),
    );
    expect([err.code, err.field]).toEqual([Code.FailedPrecondition, "models.refiner"]);
  });

  it("an unknown model is NOT_FOUND on models.base, listing the known ones", async () => {
    const err = await failure(generate(service, { spec: smallSpec({ models: { base: "no-such-model" } }) }));
    expect([err.code, err.field]).toEqual([Code.NotFound, "models.base"]);
    expect(err.message).toContain("sdxl-refiner");
  });
});
