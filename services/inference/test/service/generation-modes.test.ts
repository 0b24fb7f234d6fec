import { cp } from "node:fs/promises";
import { join } from "node:path";
import { GenerationMode, SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { DenoisePhase } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, failure, generate, imagesOf, rawImage, rawMask, same, smallSpec } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

let service: TestInference;

beforeAll(async () => {
  service = await startTestInference(
    {
      sdxl: {},
      refiner: { kind: "sdxl-refiner" },
      sd15: { kind: "sd15" },
      inpaint: { unetInChannels: 9 },
      // An encoder that returns the posterior mean: the image's latents do not depend on the seed.
      "sdxl-mean": { vaeEncoderOutput: "latent_sample" },
    },
    { DEFAULT_MODEL: "sdxl" },
    // The same weights under another id: a "refiner" that must continue the base exactly.
    (dir) => cp(join(dir, "sdxl"), join(dir, "sdxl-copy"), { recursive: true }),
  );
});
afterAll(async () => {
  await service?.close();
});

/** Mean absolute difference of two RGB8 images over the pixels `inside` selects. */
function meanDiff(
  a: Uint8Array,
  b: Uint8Array,
  width: number,
  inside: (x: number, y: number) => boolean = () => true,
): number {
  let sum = 0;
  let n = 0;
  for (let p = 0; p < a.length / 3; p++) {
    if (!inside(p % width, Math.floor(p / width))) continue;
    for (let c = 0; c < 3; c++) sum += Math.abs((a[p * 3 + c] as number) - (b[p * 3 + c] as number));
    n += 3;
  }
  return sum / n;
}

describe("txt2img", () => {
  it("gives the same bytes for the same seed and other bytes for another", async () => {
    const [a] = await imagesOf(service, smallSpec());
    const [b] = await imagesOf(service, smallSpec());
    const [c] = await imagesOf(service, smallSpec({ params: { seed: 43n } }));
    expect(same(a, b)).toBe(true);
    expect(same(a, c)).toBe(false);
  });

  it("makes N images per request, image i with seed s being image 0 of a request with seed s + i", async () => {
    const events = await generate(service, {
      spec: smallSpec({ output: { count: 3 }, params: { seed: 100n } }),
    });
    expect(events.images.map((i) => [i.index, i.seed])).toEqual([
      [0, 100n],
      [1, 101n],
      [2, 102n],
    ]);
    for (const image of events.images) {
      const [alone] = await imagesOf(service, smallSpec({ params: { seed: image.seed } }));
      expect(same(image.image?.data, alone), `image ${image.index}`).toBe(true);
    }
  });

  it("guidance rescale and clip skip change the picture; a clip skip past the encoder's layers is refused", async () => {
    const [plain] = await imagesOf(service, smallSpec());
    const [rescaled] = await imagesOf(service, smallSpec({ params: { seed: 42n, guidanceRescale: 0.7 } }));
    const [skipped] = await imagesOf(service, smallSpec({ params: { seed: 42n, clipSkip: 1 } }));
    expect(same(plain, rescaled)).toBe(false);
    expect(same(plain, skipped)).toBe(false);
    // The tiny text_encoder has 2 layers: SDXL takes the penultimate, so one more skip reaches the embeddings, two is too many.
    const err = await failure(generate(service, { spec: smallSpec({ params: { seed: 42n, clipSkip: 2 } }) }));
    expect([err.code, err.field]).toEqual([Code.InvalidArgument, "spec.params.clip_skip"]);
  });

  it("SDXL micro-conditioning changes the picture; SD 1.5 has none", async () => {
    const [plain] = await imagesOf(service, smallSpec());
    const [original] = await imagesOf(
      service,
      smallSpec({ micro: { originalSize: { width: 1024, height: 1024 } } }),
    );
    const [cropped] = await imagesOf(service, smallSpec({ micro: { cropTop: 32, cropLeft: 16 } }));
    expect(same(plain, original)).toBe(false);
    expect(same(plain, cropped)).toBe(false);
    expect(same(original, cropped)).toBe(false);
    const [sd] = await imagesOf(service, smallSpec({ models: { base: "sd15" } }));
    const [sdMicro] = await imagesOf(
      service,
      smallSpec({ models: { base: "sd15" }, micro: { originalSize: { width: 1024, height: 1024 } } }),
    );
    expect(same(sd, sdMicro)).toBe(true);
  });
});

describe("img2img", () => {
  const init = rawImage(64, 64);
  const img2img = (strength: number) =>
    smallSpec({
      mode: GenerationMode.IMG2IMG,
      initImage: init,
      scheduler: { steps: 10 },
      params: { seed: 42n, strength },
    });

  it("runs the last steps * strength steps and stays nearer the input the lower the strength", async () => {
    const low = await generate(service, { spec: img2img(0.3) });
    const high = await generate(service, { spec: img2img(0.9) });
    expect(low.progress.filter((p) => p.stage === 5).map((p) => p.step)).toEqual([1, 2, 3]);
    expect(high.progress.filter((p) => p.stage === 5)).toHaveLength(9);
    const initRgb = init.data as Uint8Array;
    const [lowImage, highImage] = [low, high].map((e) => e.images[0]?.image?.data as Uint8Array);
    expect(meanDiff(lowImage as Uint8Array, initRgb, 64)).toBeLessThan(
      meanDiff(highImage as Uint8Array, initRgb, 64),
    );
  });
});

describe("inpainting", () => {
  const init = rawImage(64, 64);
  const box = { x0: 16, y0: 16, x1: 48, y1: 48 };
  const inside = (x: number, y: number) => x >= box.x0 && x < box.x1 && y >= box.y0 && y < box.y1;
  const farOutside = (x: number, y: number) =>
    x < box.x0 - 8 || x >= box.x1 + 8 || y < box.y0 - 8 || y >= box.y1 + 8;
  const inpaint = (base: string, seed: bigint, strength = 1) =>
    smallSpec({
      models: { base },
      mode: GenerationMode.INPAINT,
      initImage: init,
      maskImage: rawMask(64, 64, box),
      params: { seed, strength },
    });

  it("with an ordinary UNet keeps the image outside the mask and repaints inside it", async () => {
    const [a, b] = await Promise.all([
      imagesOf(service, inpaint("sdxl-mean", 1n)),
      imagesOf(service, inpaint("sdxl-mean", 2n)),
    ]);
    // Two seeds repaint the inside differently; outside both keep the input's latents, and differ only where the
    // (tiny, group-normalised) VAE decoder carries the inside's change a little way across the image.
    const outside = meanDiff(a[0] as Uint8Array, b[0] as Uint8Array, 64, farOutside);
    const repainted = meanDiff(a[0] as Uint8Array, b[0] as Uint8Array, 64, inside);
    expect(repainted).toBeGreaterThan(10);
    expect(outside).toBeLessThan(repainted / 10);
  });

  it("with a 9-channel inpainting UNet feeds it the mask and the masked image", async () => {
    const [a] = await imagesOf(service, inpaint("inpaint", 1n));
    const [again] = await imagesOf(service, inpaint("inpaint", 1n));
    const [otherMask] = await imagesOf(service, {
      ...inpaint("inpaint", 1n),
      maskImage: rawMask(64, 64, { x0: 0, y0: 0, x1: 32, y1: 64 }),
    });
    const [belowMax] = await imagesOf(service, inpaint("inpaint", 1n, 0.6));
    expect(same(a, again)).toBe(true);
    expect(same(a, otherMask)).toBe(false);
    expect(same(a, belowMax)).toBe(false);
    const txt2img = await failure(generate(service, { spec: smallSpec({ models: { base: "inpaint" } }) }));
    expect([txt2img.code, txt2img.field]).toEqual([Code.InvalidArgument, "spec.mode"]);
  });
});

describe("SDXL base -> refiner handoff", () => {
  // 8 Euler steps, leading spacing, steps_offset 1: timesteps 876, 751, 626, 501, 376, 251, 126, 1. diffusers'
  // cutoff for denoising_end 0.75 is round(1000 - 750) = 250: the base runs the six timesteps >= 250.
  const handoff = (refiner: string, kind = SchedulerKind.EULER) =>
    smallSpec({
      models: { base: "sdxl", refiner },
      scheduler: { steps: 8, kind },
      params: { seed: 7n, denoisingEnd: 0.75 },
    });

  it("runs the base up to denoising_end and the refiner after it, in one call, checkpoints naming the phase", async () => {
    const events = await generate(service, { spec: handoff("refiner"), checkpointIntervalSteps: 1 });
    const steps = events.progress.filter((p) => p.stage === 5);
    expect(steps.map((p) => [p.step, p.totalSteps, p.phase])).toEqual([
      ...[1, 2, 3, 4, 5, 6].map((s) => [s, 8, DenoisePhase.BASE]),
      [7, 8, DenoisePhase.REFINER],
      [8, 8, DenoisePhase.REFINER],
    ]);
    expect(events.checkpoints.map((c) => [c.step, c.phase])).toEqual([
      ...[1, 2, 3, 4, 5].map((s) => [s, DenoisePhase.BASE]),
      // At the handoff the refiner's scheduler holds the state: the checkpoint belongs to its phase.
      [6, DenoisePhase.BASE],
      [7, DenoisePhase.REFINER],
    ]);
    const [base] = await imagesOf(service, smallSpec({ scheduler: { steps: 8 }, params: { seed: 7n } }));
    expect(same(events.images[0]?.image?.data, base)).toBe(false);
  });

  it.each([
    ["Euler", SchedulerKind.EULER],
    ["Euler a", SchedulerKind.EULER_ANCESTRAL],
  ])(
    "hands the latents over undecoded: with the base's own weights as the refiner, %s gives the base's image",
    async (_name, kind) => {
      const [split] = await imagesOf(service, handoff("sdxl-copy", kind));
      const [whole] = await imagesOf(
        service,
        smallSpec({ scheduler: { steps: 8, kind }, params: { seed: 7n } }),
      );
      expect(same(split, whole)).toBe(true);
    },
  );

  it("a refiner whose latents differ (SD 1.5 after SDXL) or inpainting with a refiner is refused", async () => {
    const sd = await failure(generate(service, { spec: handoff("sd15") }));
    expect([sd.code, sd.field]).toEqual([Code.InvalidArgument, "spec.models.refiner"]);
    const inpaint = await failure(
      generate(service, {
        spec: {
          ...handoff("refiner"),
          mode: GenerationMode.INPAINT,
          initImage: rawImage(64, 64),
          maskImage: rawMask(64, 64, { x0: 0, y0: 0, x1: 8, y1: 8 }),
        },
      }),
    );
    expect([inpaint.code, inpaint.field]).toEqual([Code.InvalidArgument, "spec.params.denoising_end"]);
    const unknown = await failure(generate(service, { spec: handoff("no-such-refiner") }));
    expect([unknown.code, unknown.field]).toEqual([Code.NotFound, "models.refiner"]);
  });
});
