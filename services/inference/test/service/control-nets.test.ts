import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ControlNetUnit, ControlNetUnitSchema } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { GenerationMode } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { type DenoiseCheckpoint, Stage } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { writeTinyControlNet } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Code,
  failure,
  generate,
  imagesOf,
  rawImage,
  rawMask,
  type SpecInit,
  same,
  smallSpec,
} from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

type UnitInit = Exclude<MessageInitShape<typeof ControlNetUnitSchema>, ControlNetUnit>;

let service: TestInference;
let single: TestInference;

const MODELS = {
  cn: { controlResiduals: true },
  plain: {},
  "cn-inpaint": { controlResiduals: true, unetInChannels: 9 as const },
  refiner: { kind: "sdxl-refiner" as const, seed: 7 },
  "refiner-cn": { kind: "sdxl-refiner" as const, seed: 7, controlResiduals: true },
  "sd15-cn": { kind: "sd15" as const, controlResiduals: true },
  "cn-fp16": { controlResiduals: true, unetPrecision: "float16" as const },
};

/** The tiny ControlNets: two SDXL ones with different weights, one for SD 1.x, and a file that is no model. */
async function writeControlNets(modelsDir: string): Promise<void> {
  const dir = join(modelsDir, "controlnet");
  await writeTinyControlNet(join(dir, "edges"));
  await writeTinyControlNet(join(dir, "other"), { seed: 9 });
  await writeTinyControlNet(join(dir, "sd15-edges"), { kind: "sd15" });
  await mkdir(join(dir, "broken"), { recursive: true });
  await writeFile(join(dir, "broken", "model.onnx"), "not an onnx model");
}

beforeAll(async () => {
  [service, single] = await Promise.all([
    startTestInference(MODELS, { MAX_UNET_BATCH: "2" }, writeControlNets),
    startTestInference({ cn: MODELS.cn }, {}, writeControlNets),
  ]);
});
afterAll(async () => {
  await Promise.all([service?.close(), single?.close()]);
});

/** A control image with hard edges: a bright square (shifted by `shift`) on a dark ground. */
function edgesImage(shift = 0, size = 64) {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const inside = x > 12 + shift && x < 40 + shift && y > 16 && y < 48;
      data.fill(inside ? 230 : 20, (y * size + x) * 3, (y * size + x) * 3 + 3);
    }
  return { encoding: ImageEncoding.RAW, data, width: size, height: size, channels: 3 };
}

const unit = (over: UnitInit = {}): UnitInit => ({
  model: "edges",
  image: edgesImage(),
  preprocessor: { name: "canny" },
  ...over,
});

const spec = (units: UnitInit[], over: SpecInit = {}): SpecInit =>
  smallSpec({ models: { base: "cn" }, controlNets: units, ...over });

const one = async (s: SpecInit, on = service) => (await imagesOf(on, s))[0];

describe("ControlNet: residuals added to a UNet that takes them", () => {
  it("scale 0 gives the bytes of no ControlNet; scale 1 changes them; two control images give two images", async () => {
    const none = await one(spec([]));
    const plain = await one(smallSpec({ models: { base: "plain" } }));
    // The same weights fed zero residuals make the plain model's image.
    expect(same(none, plain)).toBe(true);
    const zero = await one(spec([unit({ conditioningScale: 0 })]));
    expect(same(zero, none)).toBe(true);
    const full = await one(spec([unit()]));
    const shifted = await one(spec([unit({ image: edgesImage(16) })]));
    expect(same(full, none)).toBe(false);
    expect(same(shifted, full)).toBe(false);
    expect(same(shifted, none)).toBe(false);
  });

  it("acts only on the steps its guidance window covers (step / steps within [start, end], as A1111)", async () => {
    const none = await one(spec([]));
    const full = await one(spec([unit()]));
    // 4 steps are at 0, 0.25, 0.5, 0.75: a window after the last one acts on none of them.
    expect(same(await one(spec([unit({ guidanceStart: 0.8, guidanceEnd: 1 })])), none)).toBe(true);
    const early = await one(spec([unit({ guidanceStart: 0, guidanceEnd: 0.3 })]));
    expect(same(early, none)).toBe(false);
    expect(same(early, full)).toBe(false);
    // [0, 0.75] covers all four steps: the same as the whole schedule.
    expect(same(await one(spec([unit({ guidanceEnd: 0.75 })])), full)).toBe(true);
    // 5 steps: a window starting at 0.6 (0.6000000238 as a float) includes step 3 (3/5), as A1111's does.
    const five = (units: UnitInit[]) => spec(units, { scheduler: { steps: 5 } });
    expect(
      same(await one(five([unit({ guidanceStart: 0.6 })])), await one(five([unit({ guidanceStart: 0.5 })]))),
    ).toBe(true);
  });

  it("adds several units' residuals: a second unit at scale 0 changes nothing, at scale 1 it does", async () => {
    const first = await one(spec([unit()]));
    const second: UnitInit = {
      model: "other",
      image: edgesImage(8),
      preprocessor: { name: "none" },
      resizeMode: ControlResizeMode.RESIZE_AND_FILL,
    };
    expect(same(await one(spec([unit(), { ...second, conditioningScale: 0 }])), first)).toBe(true);
    const both = await one(spec([unit(), second]));
    expect(same(both, first)).toBe(false);
    expect(same(both, await one(spec([second])))).toBe(false);
  });

  it("runs on the guidance rows of a batch: images batched two to a UNet run match one-at-a-time runs", async () => {
    const s = spec([unit({ conditioningScale: 0.7 })], { output: { count: 3 }, params: { seed: 5n } });
    const batched = await imagesOf(service, s);
    const alone = await imagesOf(single, s);
    expect(batched).toHaveLength(3);
    for (const [i, image] of batched.entries()) expect(same(image, alone[i]), `image ${i}`).toBe(true);
    expect(same(batched[0], batched[1])).toBe(false);
  });

  it("works with img2img, inpainting (a 9-channel UNet gives its ControlNet the latents only) and a refiner", async () => {
    const init = rawImage(64, 64, 2);
    const img2img: SpecInit = {
      mode: GenerationMode.IMG2IMG,
      initImage: init,
      params: { seed: 3n, strength: 0.7 },
    };
    expect(same(await one(spec([unit()], img2img)), await one(spec([], img2img)))).toBe(false);
    const inpaint: SpecInit = {
      models: { base: "cn-inpaint" },
      mode: GenerationMode.INPAINT,
      initImage: init,
      maskImage: rawMask(64, 64, { x0: 16, y0: 16, x1: 48, y1: 48 }),
      params: { seed: 3n },
    };
    expect(same(await one(spec([unit()], inpaint)), await one(spec([], inpaint)))).toBe(false);
    // The refiner (no residual inputs) takes over after 75% of the steps and runs without the ControlNet.
    const refined: SpecInit = {
      models: { base: "cn", refiner: "refiner" },
      scheduler: { steps: 8 },
      params: { seed: 3n, denoisingEnd: 0.75 },
    };
    const events = await generate(service, { spec: spec([unit()], refined) });
    expect(events.images).toHaveLength(1);
    expect(events.progress.filter((p) => p.stage === Stage.DENOISING)).toHaveLength(8);
    expect(same(events.images[0]?.image?.data, await one(spec([], refined)))).toBe(false);
    // A refiner whose UNet takes residuals is fed zeros: the image of the same refiner without those inputs.
    const withResidualRefiner = await one(
      spec([unit()], { ...refined, models: { base: "cn", refiner: "refiner-cn" } }),
    );
    expect(same(withResidualRefiner, events.images[0]?.image?.data)).toBe(true);
  });

  it.each([
    ["an SD 1.x UNet with an SD 1.x ControlNet", "sd15-cn", "sd15-edges"],
    ["an fp16 UNet (float16 residual inputs)", "cn-fp16", "edges"],
  ])("fits %s: scale 0 is no ControlNet, scale 1 steers", async (_what, base, model) => {
    const s = (units: UnitInit[]) => spec(units, { models: { base } });
    const none = await one(s([]));
    expect(same(await one(s([unit({ model, conditioningScale: 0 })])), none)).toBe(true);
    expect(same(await one(s([unit({ model })])), none)).toBe(false);
  });

  it("a paused generation resumes to the uninterrupted run's bytes", async () => {
    const s = spec([unit({ guidanceStart: 0.2, guidanceEnd: 0.8 })], {
      size: { width: 96, height: 64 },
      scheduler: { steps: 30 },
      params: { seed: 13n },
    });
    const whole = await one(s);
    const id = "controlnet-pause";
    let asked = false;
    const paused = await generate(
      service,
      { generationId: id, spec: s },
      {
        onProgress: (p) => {
          if (asked || p.stage !== Stage.DENOISING || p.step !== 5) return;
          asked = true;
          void service.inference.pauseGeneration({ generationId: id });
        },
      },
    );
    expect(paused.done?.paused).toBe(true);
    const checkpoint = paused.checkpoints[0] as DenoiseCheckpoint;
    expect(checkpoint.step).toBeLessThan(30);
    const resumed = await generate(service, { generationId: id, spec: s, resumeFrom: checkpoint });
    expect(same(resumed.images[0]?.image?.data, whole)).toBe(true);
    // Another control image is another generation: its checkpoint does not resume this one.
    const other = spec([unit({ image: edgesImage(4), guidanceStart: 0.2, guidanceEnd: 0.8 })], {
      size: { width: 96, height: 64 },
      scheduler: { steps: 30 },
      params: { seed: 13n },
    });
    const wrong = await failure(generate(service, { spec: other, resumeFrom: checkpoint }));
    expect(wrong.field).toBe("resume_from.spec_digest");
  });

  it("reports each unit as the A1111 extension's infotext writes it", async () => {
    const events = await generate(service, {
      spec: spec([
        unit({ conditioningScale: 0.3, preprocessor: { name: "canny", thresholdA: 50, thresholdB: 150 } }),
        {
          model: "other",
          image: edgesImage(),
          guidanceStart: 0.25,
          resizeMode: ControlResizeMode.JUST_RESIZE,
        },
      ]),
    });
    expect(events.done?.infotext.map((f) => [f.key, f.value])).toEqual([
      [
        "ControlNet 0",
        "Module: canny, Model: edges [e3b0c442], Weight: 0.3, Resize Mode: Crop and Resize, Low Vram: False, Processor Res: 512, Threshold A: 50, Threshold B: 150, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced",
      ],
      [
        "ControlNet 1",
        "Module: none, Model: other [e3b0c442], Weight: 1.0, Resize Mode: Just Resize, Low Vram: False, Guidance Start: 0.25, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced",
      ],
    ]);
  });
});

describe("ControlNet refusals", () => {
  const cases: [string, SpecInit, Code, string, RegExp][] = [
    [
      "an unknown ControlNet",
      spec([unit({ model: "nope" })]),
      Code.NotFound,
      "spec.control_nets[0].model",
      /no ControlNet "nope" .*known: broken, edges, other, sd15-edges/,
    ],
    [
      "a UNet without residual inputs",
      spec([unit()], { models: { base: "plain" } }),
      Code.FailedPrecondition,
      "spec.control_nets",
      /model "plain" has a unet without ControlNet residual inputs/,
    ],
    [
      "a ControlNet of another family",
      spec([unit(), unit({ model: "sd15-edges" })]),
      Code.FailedPrecondition,
      "spec.control_nets[1].model",
      /ControlNet "sd15-edges" does not fit model "cn"/,
    ],
    [
      "a file that is no model",
      spec([unit({ model: "broken" })]),
      Code.FailedPrecondition,
      "spec.control_nets[0].model",
      /controlnet\/broken/,
    ],
    [
      "a scale above 2",
      spec([unit({ conditioningScale: 2.5 })]),
      Code.InvalidArgument,
      "spec.control_nets[0].conditioning_scale",
      /\[0, 2\]/,
    ],
    [
      "an empty guidance window",
      spec([unit({ guidanceStart: 0.5, guidanceEnd: 0.5 })]),
      Code.InvalidArgument,
      "spec.control_nets[0].guidance_end",
      /above guidance_start/,
    ],
    [
      "an unknown preprocessor",
      spec([unit({ preprocessor: { name: "depth" } })]),
      Code.InvalidArgument,
      "spec.control_nets[0].preprocessor.name",
      /unknown preprocessor "depth"/,
    ],
    [
      "a unit without an image",
      spec([unit({ image: undefined })]),
      Code.InvalidArgument,
      "spec.control_nets[0].image",
      /required/,
    ],
    [
      "a model name with a path",
      spec([unit({ model: "../cn" })]),
      Code.InvalidArgument,
      "spec.control_nets[0].model",
      /not a directory name/,
    ],
    [
      "an unreadable image",
      spec([unit({ image: { encoding: ImageEncoding.PNG, data: new Uint8Array([1, 2, 3]) } })]),
      Code.InvalidArgument,
      "spec.control_nets[0].image",
      /not a readable image/,
    ],
  ];
  it.each(cases)(
    "%s is refused, naming the field; the service stays up",
    async (_what, s, code, field, message) => {
      const f = await failure(generate(service, { spec: s }));
      expect([f.code, f.field]).toEqual([code, field]);
      expect(f.message).toMatch(message);
      expect(await one(spec([unit()]))).toHaveLength(64 * 64 * 3);
    },
  );
});
