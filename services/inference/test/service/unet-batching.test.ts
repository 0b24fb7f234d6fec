import { SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { Stage } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate, imagesOf, same, smallSpec } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

let batched: TestInference;
let single: TestInference;
let concurrent: TestInference;

beforeAll(async () => {
  [batched, single, concurrent] = await Promise.all([
    startTestInference({ sdxl: {} }, { MAX_UNET_BATCH: "4" }),
    startTestInference({ sdxl: {} }, { MAX_UNET_BATCH: "1" }),
    startTestInference({ sdxl: {} }, { MAX_UNET_BATCH: "4", MAX_CONCURRENT_GENERATIONS: "3" }),
  ]);
});
afterAll(async () => {
  await Promise.all([batched?.close(), single?.close(), concurrent?.close()]);
});

describe("UNet batches (MAX_UNET_BATCH)", () => {
  it.each([
    ["Euler", SchedulerKind.EULER],
    ["Euler a, each image drawing from its own generator", SchedulerKind.EULER_ANCESTRAL],
  ])(
    "%s: a request of 5 runs as batches of 4 + 1 and gives the images of one-at-a-time runs",
    async (_name, kind) => {
      const spec = smallSpec({ scheduler: { steps: 3, kind }, output: { count: 5 }, params: { seed: 900n } });
      const events = await generate(batched, { spec });
      // 3 steps for images 0-3 together, then 3 for image 4: six UNet runs (of 8 and 2 rows with guidance), not 15.
      expect(events.progress.filter((p) => p.stage === Stage.DENOISING).map((p) => p.step)).toEqual([
        1, 2, 3, 1, 2, 3,
      ]);
      expect(events.done?.timings?.stepSeconds).toHaveLength(6);
      const alone = await imagesOf(single, spec);
      const images = [...events.images].sort((a, b) => a.index - b.index);
      expect(images).toHaveLength(5);
      for (const [i, image] of images.entries())
        expect(same(image.image?.data, alone[i]), `image ${i}`).toBe(true);
    },
  );

  it("without guidance a batch has one row per image, and still matches", async () => {
    const spec = smallSpec({ output: { count: 2 }, params: { seed: 3n, guidanceScale: 1 } });
    const [a, b] = await Promise.all([imagesOf(batched, spec), imagesOf(single, spec)]);
    expect(same(a[0], b[0]) && same(a[1], b[1])).toBe(true);
  });

  it("concurrent requests share UNet runs, even at different timesteps, and each still gets its own images", async () => {
    const specs = [
      smallSpec({ scheduler: { steps: 20, kind: SchedulerKind.EULER }, params: { seed: 1n } }),
      smallSpec({
        scheduler: { steps: 20, kind: SchedulerKind.EULER_ANCESTRAL },
        params: { seed: 2n },
        conditioning: { prompt: "a boat" },
      }),
      smallSpec({
        scheduler: { steps: 14, kind: SchedulerKind.DPMPP_2M },
        params: { seed: 3n, guidanceScale: 5 },
      }),
    ];
    const together = await Promise.all(specs.map((spec) => imagesOf(concurrent, spec)));
    for (const [i, spec] of specs.entries()) {
      const [alone] = await imagesOf(single, spec);
      expect(same(together[i]?.[0], alone), `request ${i}`).toBe(true);
    }
    const finished = concurrent.logs.filter((l) => l.msg === "generation finished");
    expect(finished).toHaveLength(3);
    for (const line of finished) expect(line.sharedSteps).toBeGreaterThan(0);
  });
});
