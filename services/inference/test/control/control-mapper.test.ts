import { AbortedError, ResourceExhaustedError, UnavailableError } from "@dmesh/runtime";
import { afterEach, describe, expect, it } from "vitest";
import { type ControlMapPlan, makeControlMap } from "../../src/control/control-map.js";
import { ControlMapper } from "../../src/control/control-mapper.js";
import { controlTensor } from "../../src/control/control-tensor.js";
import { loadOpenCv } from "../../src/control/opencv.js";
import { resolvePreprocessor } from "../../src/control/preprocessors.js";
import type { RgbImage } from "../../src/control/rgb-image.js";

/** A 96x64 image: a bright square on a dark ground. */
function square(): RgbImage {
  const width = 96;
  const height = 64;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++)
      data.fill(
        x > 30 && x < 70 && y > 16 && y < 48 ? 220 : 15,
        (y * width + x) * 3,
        (y * width + x) * 3 + 3,
      );
  }
  return { data, width, height };
}

const plan: ControlMapPlan = {
  preprocessor: resolvePreprocessor(
    { name: "canny", resolution: 64, thresholdA: 0, thresholdB: 0, pixelPerfect: false },
    "preprocessor",
  ),
  target: { width: 128, height: 128, resizeMode: "crop-and-resize" },
};

const mappers: ControlMapper[] = [];
function mapper(maxQueued?: number, jobTimeoutMs?: number): ControlMapper {
  const m = new ControlMapper(maxQueued, jobTimeoutMs);
  mappers.push(m);
  return m;
}
afterEach(async () => {
  for (const m of mappers.splice(0)) await m.close();
});

const never = new AbortController().signal;

describe("ControlMapper: control maps on a worker thread", () => {
  it("makes the same map as the domain function, off the main thread", async () => {
    const { map, resolution } = await mapper().map(square(), plan, never);
    const { cv } = await loadOpenCv();
    const here = makeControlMap(cv, square(), plan);
    expect(resolution).toBe(64);
    expect([map.width, map.height]).toEqual([128, 128]);
    expect(Buffer.from(map.data).equals(Buffer.from(here.map.data))).toBe(true);
    expect(map.data.includes(255)).toBe(true);
  });

  it("refuses a request past its queue with RESOURCE_EXHAUSTED", async () => {
    const m = mapper(0);
    const first = m.map(square(), plan, never);
    await expect(m.map(square(), plan, never)).rejects.toBeInstanceOf(ResourceExhaustedError);
    await first;
  });

  it("drops a queued request whose caller cancels", async () => {
    const m = mapper(1);
    const first = m.map(square(), plan, never);
    const cancel = new AbortController();
    const second = m.map(square(), plan, cancel.signal);
    cancel.abort();
    await expect(second).rejects.toBeInstanceOf(AbortedError);
    await first;
  });

  it("ends a job that overruns its bound with UNAVAILABLE", async () => {
    // 1 ms is shorter than compiling OpenCV alone.
    await expect(mapper(1, 1).map(square(), plan, never)).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe("controlTensor: the ControlNet's controlnet_cond", () => {
  it("is [batch, 3, H, W] float32 RGB in [0, 1], the same map in every row", () => {
    const map: RgbImage = { data: Uint8Array.from([255, 0, 51, 0, 102, 255]), width: 2, height: 1 };
    const t = controlTensor(map, 2);
    expect(t.length).toBe(2 * 3 * 2);
    // Planes R, G, B of the two pixels, then the same again for the second row.
    const row = [1, 0, 0, 102 / 255, 51 / 255, 1].map(Math.fround);
    expect([...t]).toEqual([...row, ...row]);
  });
});
