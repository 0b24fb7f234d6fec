import type { MessageInitShape } from "@bufbuild/protobuf";
import { ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { ImageEncoding, type ImageSchema } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import type { PreprocessControlRequestSchema } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeControlMap, planControlMap } from "../../src/control/control-map.js";
import { loadOpenCv } from "../../src/control/opencv.js";
import { resolvePreprocessor } from "../../src/control/preprocessors.js";
import { Code, failure } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

type RequestInit = MessageInitShape<typeof PreprocessControlRequestSchema>;
type ImageInit = MessageInitShape<typeof ImageSchema>;

let service: TestInference;

beforeAll(async () => {
  // No model: the preprocessors need none.
  service = await startTestInference({});
});
afterAll(async () => {
  await service?.close();
});

/**
 * A dark, faintly textured 300x200 scene with a bright disc (a gradient of about 840 across its edge) and a
 * dim bar (about 240), shifted by `shift` pixels: canny's default thresholds (100, 200) find both.
 */
function scene(shift = 0): Uint8Array {
  const width = 300;
  const height = 200;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const disc = (x - 90 - shift) ** 2 + (y - 100) ** 2 < 60 ** 2;
      const bar = x > 180 && x < 270 && y > 40 + shift && y < 170;
      const v = disc ? 230 : bar ? 80 : 20 + ((x + y) % 7);
      data.set([v, disc ? 200 : v, bar ? 60 : v], (y * width + x) * 3);
    }
  }
  return data;
}

async function png(data: Uint8Array, width = 300, height = 200): Promise<ImageInit> {
  const bytes = await sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return { encoding: ImageEncoding.PNG, data: new Uint8Array(bytes) };
}

async function rawMap(req: RequestInit): Promise<{ data: Uint8Array; width: number; height: number }> {
  const res = await service.conditioning.preprocessControl({ ...req, outputEncoding: ImageEncoding.RAW });
  const map = res.controlMap;
  if (!map) throw new Error("no control map");
  expect(map.channels).toBe(3);
  expect(map.data.length).toBe(map.width * map.height * 3);
  return { data: map.data, width: map.width, height: map.height };
}

const edgeCount = (m: { data: Uint8Array }) => m.data.filter((v, i) => i % 3 === 0 && v === 255).length;

describe("ConditioningService.PreprocessControl: a control map to preview", () => {
  it("returns the canny map of a PNG fitted to the generation size, as a PNG, the same as the domain makes it", async () => {
    const req: RequestInit = {
      image: await png(scene()),
      preprocessor: { name: "canny", resolution: 200, thresholdA: 100, thresholdB: 200 },
      width: 512,
      height: 384,
      resizeMode: ControlResizeMode.CROP_AND_RESIZE,
    };
    const res = await service.conditioning.preprocessControl(req);
    expect(res.resolution).toBe(200);
    expect(res.controlMap?.encoding).toBe(ImageEncoding.PNG);
    const { data, info } = await sharp(res.controlMap?.data).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([512, 384, 3]);
    expect(new Set(data)).toEqual(new Set([0, 255]));
    expect(edgeCount({ data })).toBeGreaterThan(500);

    const { cv } = await loadOpenCv();
    const p = resolvePreprocessor(
      { name: "canny", resolution: 200, thresholdA: 100, thresholdB: 200, pixelPerfect: false },
      "preprocessor",
    );
    const image = { data: scene(), width: 300, height: 200 };
    const plan = planControlMap(
      image,
      p,
      { width: 512, height: 384, resizeMode: "crop-and-resize" },
      {
        image: "image",
        preprocessor: "preprocessor",
      },
    );
    expect(Buffer.from(makeControlMap(cv, image, plan).map.data).equals(data)).toBe(true);
  });

  it("follows the thresholds and the image: lower thresholds find more edges, another image another map", async () => {
    const base: RequestInit = { image: await png(scene()), preprocessor: { name: "canny", resolution: 200 } };
    const defaults = await rawMap(base);
    const strict = await rawMap({
      ...base,
      preprocessor: { name: "canny", resolution: 200, thresholdA: 250, thresholdB: 255 },
    });
    const loose = await rawMap({
      ...base,
      preprocessor: { name: "canny", resolution: 200, thresholdA: 5, thresholdB: 10 },
    });
    expect(edgeCount(strict)).toBeLessThan(edgeCount(defaults));
    expect(edgeCount(loose)).toBeGreaterThan(edgeCount(defaults));
    const shifted = await rawMap({ ...base, image: await png(scene(25)) });
    expect(Buffer.from(shifted.data).equals(Buffer.from(defaults.data))).toBe(false);
    // The short side becomes the resolution; the long side follows.
    expect([defaults.width, defaults.height]).toEqual([300, 200]);
  });

  it("passes an image through with 'none', compositing alpha over white; fits it with each resize mode", async () => {
    const width = 40;
    const height = 20;
    const rgba = new Uint8Array(width * height * 4);
    for (let p = 0; p < width * height; p++) rgba.set([200, 100, 50, p % width < 20 ? 255 : 0], p * 4);
    const image: ImageInit = { encoding: ImageEncoding.RAW, data: rgba, width, height, channels: 4 };
    const same = await rawMap({ image, preprocessor: { name: "none" } });
    expect([same.width, same.height]).toEqual([40, 20]);
    expect([...same.data.subarray(0, 3)]).toEqual([200, 100, 50]);
    expect([...same.data.subarray(39 * 3, 40 * 3)]).toEqual([255, 255, 255]);

    // 40x20 into 64x64: stretched; cropped to the middle of a 128x64 scale; centred on 64x32 with fill.
    const sizes = { width: 64, height: 64 };
    const just = await rawMap({ image, ...sizes, resizeMode: ControlResizeMode.JUST_RESIZE });
    const crop = await rawMap({ image, ...sizes, resizeMode: ControlResizeMode.CROP_AND_RESIZE });
    const fill = await rawMap({ image, ...sizes, resizeMode: ControlResizeMode.RESIZE_AND_FILL });
    const px = (m: { data: Uint8Array; width: number }, x: number, y: number) => [
      ...m.data.subarray((y * m.width + x) * 3, (y * m.width + x) * 3 + 3),
    ];
    expect(px(just, 2, 32)).toEqual([200, 100, 50]);
    expect(px(just, 61, 32)).toEqual([255, 255, 255]);
    // Crop keeps columns 32..95 of the 128x64 scale: colour on the left, white on the right.
    expect(px(crop, 2, 2)).toEqual([200, 100, 50]);
    expect(px(crop, 61, 61)).toEqual([255, 255, 255]);
    // Fill: rows 16..47 hold the image; above and below, the border's median (white: 60 of 120 border
    // pixels each, the mean of the two middle values truncated).
    expect(px(fill, 2, 32)).toEqual([200, 100, 50]);
    expect(px(fill, 2, 2)).toEqual([227, 177, 152]);
  });

  it("estimates the resolution with pixel perfect from the image and the target", async () => {
    const res = await service.conditioning.preprocessControl({
      image: await png(scene()),
      preprocessor: { name: "canny", pixelPerfect: true },
      width: 512,
      height: 384,
    });
    // Crop and resize scales 300x200 by max(384/200, 512/300) = 1.92: the short side becomes 384.
    expect(res.resolution).toBe(384);
  });

  const image = async () => png(scene());
  const thin: ImageInit = {
    encoding: ImageEncoding.RAW,
    data: new Uint8Array(4000),
    width: 4000,
    height: 1,
    channels: 1,
  };
  const notPng: ImageInit = {
    encoding: ImageEncoding.PNG,
    data: new TextEncoder().encode("not a PNG at all"),
  };
  const short: ImageInit = {
    encoding: ImageEncoding.RAW,
    data: new Uint8Array(10),
    width: 4,
    height: 4,
    channels: 3,
  };
  it.each<[string, string, () => Promise<RequestInit>]>([
    ["no image", "image", async () => ({ preprocessor: { name: "canny" } })],
    ["bytes that are no image", "image", async () => ({ image: notPng })],
    ["raw pixels that do not fill the stated size", "image", async () => ({ image: short })],
    [
      "an unknown preprocessor",
      "preprocessor.name",
      async () => ({ image: await image(), preprocessor: { name: "openpose" } }),
    ],
    [
      "a low threshold past 255",
      "preprocessor.threshold_a",
      async () => ({ image: await image(), preprocessor: { name: "canny", thresholdA: 300 } }),
    ],
    [
      "a negative high threshold",
      "preprocessor.threshold_b",
      async () => ({ image: await image(), preprocessor: { name: "canny", thresholdB: -4 } }),
    ],
    [
      "a resolution under 64",
      "preprocessor.resolution",
      async () => ({ image: await image(), preprocessor: { name: "canny", resolution: 10 } }),
    ],
    [
      "a thin image scaled past the pixel limit",
      "preprocessor.resolution",
      async () => ({ image: thin, preprocessor: { name: "canny", resolution: 2048 } }),
    ],
    [
      "pixel perfect without a size",
      "preprocessor.pixel_perfect",
      async () => ({ image: await image(), preprocessor: { name: "canny", pixelPerfect: true } }),
    ],
    [
      "a width that is not a multiple of 8",
      "width",
      async () => ({ image: await image(), width: 100, height: 64 }),
    ],
    ["a height without a width", "width", async () => ({ image: await image(), height: 64 })],
    [
      "an unknown resize mode",
      "resize_mode",
      async () => ({ image: await image(), width: 64, height: 64, resizeMode: 9 as ControlResizeMode }),
    ],
    [
      "a JPEG output",
      "output_encoding",
      async () => ({ image: await image(), outputEncoding: ImageEncoding.JPEG }),
    ],
  ])("refuses %s with INVALID_ARGUMENT naming %s, and keeps serving", async (_what, field, make) => {
    const err = await failure(service.conditioning.preprocessControl(await make()));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.field).toBe(field);
    const ok = await service.conditioning.preprocessControl({
      image: await image(),
      preprocessor: { name: "none" },
    });
    expect(ok.controlMap?.width).toBe(300);
  });
});
