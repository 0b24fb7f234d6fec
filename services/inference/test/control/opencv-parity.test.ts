import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeControlMap, planControlMap } from "../../src/control/control-map.js";
import { loadOpenCv, type OpenCv } from "../../src/control/opencv.js";
import { resolvePreprocessor } from "../../src/control/preprocessors.js";
import type { ControlResizeMode } from "../../src/control/resize-modes.js";
import { type RgbImage, toRgb } from "../../src/control/rgb-image.js";

// Maps made here against maps made by OpenCV's Python binding (Debian's python3-opencv, an independent
// native build) following the A1111 ControlNet extension's steps, on images the reference script draws.
const python = "/usr/bin/python3";
const hasOpenCv = (() => {
  try {
    execFileSync(python, ["-c", "import cv2, numpy"], { stdio: "ignore", timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
})();

interface Case {
  id: string;
  image: "shapes" | "photo" | "gray" | "rgba" | "segmentation";
  preprocessor: {
    name: "canny" | "none";
    resolution?: number;
    low?: number;
    high?: number;
    pixel_perfect?: boolean;
  };
  target?: { width: number; height: number; mode: ControlResizeMode };
  /** The most pixels (any channel) that may differ from OpenCV's map. */
  tolerance: number;
}

const CASES: Case[] = [
  // The preprocessor alone: bicubic enlarging, area shrinking, no scaling, swapped thresholds, gray, RGBA.
  {
    id: "canny-shapes-512",
    image: "shapes",
    preprocessor: { name: "canny", resolution: 512, low: 100, high: 200 },
    tolerance: 4,
  },
  {
    id: "canny-photo-512",
    image: "photo",
    preprocessor: { name: "canny", resolution: 512, low: 100, high: 200 },
    tolerance: 4,
  },
  {
    id: "canny-photo-700",
    image: "photo",
    preprocessor: { name: "canny", resolution: 700, low: 50, high: 150 },
    tolerance: 4,
  },
  {
    id: "canny-photo-swapped",
    image: "photo",
    preprocessor: { name: "canny", resolution: 384, low: 200, high: 100 },
    tolerance: 4,
  },
  {
    id: "canny-gray",
    image: "gray",
    preprocessor: { name: "canny", resolution: 512, low: 30, high: 90 },
    tolerance: 4,
  },
  {
    id: "canny-rgba",
    image: "rgba",
    preprocessor: { name: "canny", resolution: 256, low: 100, high: 200 },
    tolerance: 4,
  },
  // Fitted to a generation size: binary one-pixel edges (NMS, Otsu, thinning), then the plain paths.
  {
    id: "canny-shapes-crop",
    image: "shapes",
    preprocessor: { name: "canny", resolution: 512, low: 100, high: 200 },
    target: { width: 1024, height: 768, mode: "crop-and-resize" },
    tolerance: 8,
  },
  {
    id: "canny-photo-just",
    image: "photo",
    preprocessor: { name: "canny", resolution: 512, low: 100, high: 200 },
    target: { width: 512, height: 512, mode: "just-resize" },
    tolerance: 8,
  },
  {
    id: "canny-shapes-fill",
    image: "shapes",
    preprocessor: { name: "canny", resolution: 512, low: 100, high: 200 },
    target: { width: 768, height: 1024, mode: "resize-and-fill" },
    tolerance: 8,
  },
  {
    id: "canny-photo-pixel-perfect",
    image: "photo",
    preprocessor: { name: "canny", low: 100, high: 200, pixel_perfect: true },
    target: { width: 1024, height: 576, mode: "crop-and-resize" },
    tolerance: 8,
  },
  {
    id: "none-photo-fill",
    image: "photo",
    preprocessor: { name: "none" },
    target: { width: 640, height: 960, mode: "resize-and-fill" },
    tolerance: 8,
  },
  {
    id: "none-photo-shrink",
    image: "photo",
    preprocessor: { name: "none" },
    target: { width: 512, height: 512, mode: "crop-and-resize" },
    tolerance: 8,
  },
  {
    id: "none-segmentation-just",
    image: "segmentation",
    preprocessor: { name: "none" },
    target: { width: 1024, height: 768, mode: "just-resize" },
    tolerance: 0,
  },
];

interface Reference {
  readonly map: RgbImage;
  readonly resolution: number;
}

let dir: string;
let cv: OpenCv;
const images = new Map<string, RgbImage>();
const references = new Map<string, Reference>();

beforeAll(async () => {
  if (!hasOpenCv) return;
  dir = await mkdtemp(join(tmpdir(), "dmesh-control-parity-"));
  await writeFile(join(dir, "cases.json"), JSON.stringify(CASES));
  execFileSync(python, [join(import.meta.dirname, "a1111_control_reference.py"), dir], { timeout: 120_000 });
  const meta = JSON.parse(await readFile(join(dir, "images.json"), "utf8")) as Record<
    string,
    { width: number; height: number; channels: number }
  >;
  for (const [name, m] of Object.entries(meta)) {
    const raw = new Uint8Array(await readFile(join(dir, `${name}.raw`)));
    images.set(name, toRgb(raw, m.width, m.height, m.channels));
  }
  for (const c of CASES) {
    const size = JSON.parse(await readFile(join(dir, `${c.id}.json`), "utf8"));
    const data = new Uint8Array(await readFile(join(dir, `${c.id}.map`)));
    references.set(c.id, {
      map: { data, width: size.width, height: size.height },
      resolution: size.resolution,
    });
  }
  ({ cv } = await loadOpenCv());
}, 180_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Pixels whose RGB differs anywhere. */
function differingPixels(a: RgbImage, b: RgbImage): number {
  let n = 0;
  for (let i = 0; i < a.data.length; i += 3) {
    if (a.data[i] !== b.data[i] || a.data[i + 1] !== b.data[i + 1] || a.data[i + 2] !== b.data[i + 2]) n++;
  }
  return n;
}

describe.skipIf(!hasOpenCv)(
  "control maps match OpenCV's, made by the ControlNet extension's steps (skipped without Debian's python3-opencv)",
  () => {
    it.each(CASES.map((c) => [c.id, c] as const))("%s", (_id, c) => {
      const image = images.get(c.image) as RgbImage;
      const reference = references.get(c.id) as Reference;
      const p = resolvePreprocessor(
        {
          name: c.preprocessor.name,
          resolution: c.preprocessor.resolution ?? 0,
          thresholdA: c.preprocessor.low ?? 0,
          thresholdB: c.preprocessor.high ?? 0,
          pixelPerfect: c.preprocessor.pixel_perfect ?? false,
        },
        "preprocessor",
      );
      const target = c.target && {
        width: c.target.width,
        height: c.target.height,
        resizeMode: c.target.mode,
      };
      const plan = planControlMap(image, p, target, { image: "image", preprocessor: "preprocessor" });
      const { map, resolution } = makeControlMap(cv, image, plan);
      if (c.preprocessor.name === "canny") expect(resolution).toBe(reference.resolution);
      expect([map.width, map.height]).toEqual([reference.map.width, reference.map.height]);
      const diff = differingPixels(map, reference.map);
      const edges =
        c.preprocessor.name === "canny" ? map.data.filter((v, i) => i % 3 === 0 && v === 255).length : -1;
      console.info(
        `${c.id}: ${map.width}x${map.height}, ${diff} pixels differ from OpenCV's (edge pixels ${edges})`,
      );
      expect(diff).toBeLessThanOrEqual(c.tolerance);
      // A map that is all black would match an all-black reference: the edges must be there.
      if (c.preprocessor.name === "canny") expect(edges).toBeGreaterThan(map.width);
    });
  },
);
