import { describe, expect, it } from "vitest";
import { enhanceImage, planEnhancePipelines } from "../../src/enhance/enhance-image.js";
import type { EnhanceOp } from "../../src/enhance/enhance-op.js";
import type { RawImage } from "../../src/image/raw-image.js";
import { gradientImage } from "../support/test-images.js";

const mean = (image: RawImage) => image.data.reduce((sum, v) => sum + v, 0) / image.data.length;
const range = (image: RawImage) => Math.max(...image.data) - Math.min(...image.data);
/** Mean absolute difference between horizontal neighbours: how crisp edges are. */
function edgeEnergy(image: RawImage): number {
  let sum = 0;
  for (let i = image.channels; i < image.data.length; i++)
    sum += Math.abs((image.data[i] ?? 0) - (image.data[i - image.channels] ?? 0));
  return sum / image.data.length;
}
function maxDifference(a: RawImage, b: RawImage): number {
  return a.data.reduce((max, v, i) => Math.max(max, Math.abs(v - (b.data[i] ?? 0))), 0);
}

/** Mid-grey blocks with soft edges, low contrast, a little colour, and salt noise. */
function lowContrastImage(): RawImage {
  const width = 48;
  const height = 32;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const base = 100 + (x > 24 ? 30 : 0) + (y > 16 ? 10 : 0);
      data.set([base + 12, base, base - 12], i);
    }
  }
  data.set([255, 255, 255], (10 * width + 10) * 3); // one hot pixel
  return { data, width, height, channels: 3 };
}

describe("each step does what it says", () => {
  const source = lowContrastImage();

  it("sharpen crisps edges", async () => {
    expect(edgeEnergy(await enhanceImage(source, [{ op: "sharpen", sigma: 1.5 }]))).toBeGreaterThan(
      edgeEnergy(source),
    );
  });

  it("normalize stretches a low-contrast image to the full range", async () => {
    expect(range(source)).toBeLessThan(256);
    const out = await enhanceImage(source, [{ op: "normalize", lower: 0, upper: 100 }]);
    expect(Math.min(...out.data)).toBeLessThan(10);
    expect(Math.max(...out.data)).toBeGreaterThan(245);
  });

  it("modulate brightens and desaturates", async () => {
    expect(mean(await enhanceImage(source, [{ op: "modulate", brightness: 1.4 }]))).toBeGreaterThan(
      mean(source) + 20,
    );
    const grey = await enhanceImage(source, [{ op: "modulate", saturation: 0 }]);
    for (let i = 0; i < grey.data.length; i += 3) {
      expect(Math.abs((grey.data[i] ?? 0) - (grey.data[i + 2] ?? 0))).toBeLessThanOrEqual(2);
    }
  });

  it("gamma above 1 brightens midtones and below 1 darkens them", async () => {
    expect(mean(await enhanceImage(source, [{ op: "gamma", gamma: 2 }]))).toBeGreaterThan(mean(source) + 30);
    expect(mean(await enhanceImage(source, [{ op: "gamma", gamma: 0.5 }]))).toBeLessThan(mean(source) - 30);
  });

  it("denoise removes an isolated hot pixel", async () => {
    const out = await enhanceImage(source, [{ op: "denoise", size: 3 }]);
    const hot = (10 * source.width + 10) * 3;
    expect(source.data[hot]).toBe(255);
    expect(out.data[hot]).toBe(112);
  });
});

describe("order", () => {
  const source = gradientImage(40, 32);
  const one = (op: EnhanceOp) => (image: RawImage) => enhanceImage(image, [op]);

  it("plans one pipeline for an order sharp follows, more when the order or a setter repeats", () => {
    const sizes = (ops: EnhanceOp[]) => planEnhancePipelines(ops).map((stage) => stage.length);
    const denoise: EnhanceOp = { op: "denoise", size: 3 };
    const sharpen: EnhanceOp = { op: "sharpen", sigma: 1 };
    const normalize: EnhanceOp = { op: "normalize" };
    const brighten: EnhanceOp = { op: "gamma", gamma: 2 };
    const darken: EnhanceOp = { op: "gamma", gamma: 0.5 };
    expect(sizes([darken, denoise, { op: "modulate", saturation: 1.2 }, sharpen, normalize])).toEqual([5]);
    expect(sizes([denoise, sharpen, brighten, normalize])).toEqual([4]);
    expect(sizes([sharpen, denoise])).toEqual([1, 1]);
    expect(sizes([normalize, sharpen, sharpen])).toEqual([1, 1, 1]);
    expect(sizes([darken, brighten])).toEqual([1, 1]);
    expect(sizes([])).toEqual([]);
  });

  it("one merged pipeline matches applying the steps one by one (within rounding)", async () => {
    const ops: EnhanceOp[] = [
      { op: "denoise", size: 3 },
      { op: "modulate", brightness: 1.1, saturation: 1.3 },
      { op: "sharpen", sigma: 1 },
    ];
    let stepwise = source;
    for (const op of ops) stepwise = await one(op)(stepwise);
    expect(maxDifference(await enhanceImage(source, ops), stepwise)).toBeLessThanOrEqual(2);
  });

  it("an order sharp would not follow is honoured: sharpen then denoise differs from denoise then sharpen", async () => {
    const sharpenThenDenoise = await enhanceImage(source, [
      { op: "sharpen", sigma: 2 },
      { op: "denoise", size: 5 },
    ]);
    const stepwise = await one({ op: "denoise", size: 5 })(await one({ op: "sharpen", sigma: 2 })(source));
    expect(maxDifference(sharpenThenDenoise, stepwise)).toBe(0);
    const denoiseThenSharpen = await enhanceImage(source, [
      { op: "denoise", size: 5 },
      { op: "sharpen", sigma: 2 },
    ]);
    expect(maxDifference(sharpenThenDenoise, denoiseThenSharpen)).toBeGreaterThan(0);
  });

  it("stops between pipelines when aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("client went away"));
    await expect(enhanceImage(source, [{ op: "sharpen", sigma: 1 }], controller.signal)).rejects.toThrow(
      "client went away",
    );
  });
});

describe("validation", () => {
  it("names the offending step and parameter", async () => {
    const source = gradientImage(8, 8);
    const cases: Array<[unknown, string]> = [
      [{ op: "sharpen", sigma: 0 }, "ops[1].sigma"],
      [{ op: "normalize", lower: 60, upper: 40 }, "ops[1].lower"],
      [{ op: "modulate" }, "ops[1].brightness"],
      [{ op: "modulate", saturation: 5 }, "ops[1].saturation"],
      [{ op: "gamma", gamma: 0.2 }, "ops[1].gamma"],
      [{ op: "denoise", size: 4 }, "ops[1].size"],
      [{ op: "blur", sigma: 1 }, "ops[1].op"],
    ];
    for (const [bad, field] of cases) {
      const ops = [{ op: "gamma", gamma: 1.2 }, bad] as EnhanceOp[];
      await expect(enhanceImage(source, ops)).rejects.toThrow(expect.objectContaining({ field }));
    }
    const tooMany = Array.from({ length: 17 }, (): EnhanceOp => ({ op: "sharpen", sigma: 1 }));
    await expect(enhanceImage(source, tooMany)).rejects.toThrow(expect.objectContaining({ field: "ops" }));
  });
});
