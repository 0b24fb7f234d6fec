import { GenerationMode } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, failure, generate, rawImage, type SpecInit, smallSpec } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

let service: TestInference;

beforeAll(async () => {
  service = await startTestInference({ sdxl: {} });
});
afterAll(async () => {
  await service?.close();
});

const notAnImage = {
  encoding: ImageEncoding.PNG,
  data: new TextEncoder().encode("certainly not a PNG file"),
};

describe("bad requests are INVALID_ARGUMENT naming the field, and the service keeps serving", () => {
  it.each<[string, SpecInit, string]>([
    ["an absurd width", smallSpec({ size: { width: 100_000, height: 64 } }), "spec.size.width"],
    [
      "a width that is not a multiple of 8",
      smallSpec({ size: { width: 100, height: 64 } }),
      "spec.size.width",
    ],
    ["too many pixels", smallSpec({ size: { width: 4096, height: 4096 } }), "spec.size"],
    ["an absurd step count", smallSpec({ scheduler: { steps: 100_000 } }), "spec.scheduler.steps"],
    ["too many images", smallSpec({ output: { count: 1000 } }), "spec.output.count"],
    ["an empty prompt", smallSpec({ conditioning: { prompt: " " } }), "spec.conditioning.prompt"],
    ["img2img without an image", smallSpec({ mode: GenerationMode.IMG2IMG }), "spec.init_image"],
    [
      "an init image that is not an image",
      smallSpec({ mode: GenerationMode.IMG2IMG, initImage: notAnImage }),
      "spec.init_image",
    ],
    [
      "a mask that is not an image",
      smallSpec({ mode: GenerationMode.INPAINT, initImage: rawImage(64, 64), maskImage: notAnImage }),
      "spec.mask_image",
    ],
    [
      "raw pixels whose size does not match",
      smallSpec({ mode: GenerationMode.IMG2IMG, initImage: { ...rawImage(64, 64), width: 65 } }),
      "spec.init_image",
    ],
    [
      "a strength of zero",
      smallSpec({ mode: GenerationMode.IMG2IMG, initImage: rawImage(64, 64), params: { strength: 0 } }),
      "spec.params.strength",
    ],
    [
      "a strength that leaves no step",
      smallSpec({ mode: GenerationMode.IMG2IMG, initImage: rawImage(64, 64), params: { strength: 0.1 } }),
      "spec.params.strength",
    ],
    [
      "denoising_end without a refiner",
      smallSpec({ params: { denoisingEnd: 0.8 } }),
      "spec.params.denoising_end",
    ],
  ])("%s", async (_name, spec, field) => {
    const err = await failure(generate(service, { spec }));
    expect([err.code, err.field]).toEqual([Code.InvalidArgument, field]);
    expect((await generate(service, { spec: smallSpec() })).images).toHaveLength(1);
  });

  it("a negative checkpoint interval and a pause without an id", async () => {
    const interval = await failure(generate(service, { spec: smallSpec(), checkpointIntervalSteps: -1 }));
    expect([interval.code, interval.field]).toEqual([Code.InvalidArgument, "checkpoint_interval_steps"]);
    const pause = await failure(service.inference.pauseGeneration({ generationId: "" }));
    expect([pause.code, pause.field]).toEqual([Code.InvalidArgument, "generation_id"]);
    expect((await service.inference.pauseGeneration({ generationId: "nothing-running" })).found).toBe(false);
  });
});
