import { describe, expect, it } from "vitest";
import { RESIZE_KERNELS, resizeImage } from "../../src/resize/resize-image.js";
import { gradientImage } from "../support/test-images.js";

describe("resizeImage", () => {
  /** Kernels grouped by the pixels they produce. */
  async function groupKernels(scale: number): Promise<string[][]> {
    const source = gradientImage(24, 16);
    const groups = new Map<string, string[]>();
    for (const kernel of RESIZE_KERNELS) {
      const out = await resizeImage(source, { scale, kernel });
      expect(out).toMatchObject({ width: 24 * scale, height: 16 * scale, channels: 3 });
      const key = Buffer.from(out.data).toString("base64");
      groups.set(key, [...(groups.get(key) ?? []), kernel]);
    }
    return [...groups.values()];
  }

  it.each([2, 4])(
    "upscales %ix; enlarging, libvips interpolates nearest, bilinear or bicubic",
    async (scale) => {
      expect(await groupKernels(scale)).toEqual([
        ["lanczos3", "lanczos2", "mitchell", "cubic"],
        ["linear"],
        ["nearest"],
      ]);
    },
  );

  it("applies each kernel itself when shrinking", async () => {
    expect(await groupKernels(0.5)).toEqual(RESIZE_KERNELS.map((kernel) => [kernel]));
  });

  it("nearest replicates pixels exactly", async () => {
    const source = {
      data: new Uint8Array([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]),
      width: 2,
      height: 2,
      channels: 3 as const,
    };
    const out = await resizeImage(source, { scale: 2, kernel: "nearest" });
    const pixel = (x: number, y: number) => [...out.data.subarray((y * 4 + x) * 3, (y * 4 + x) * 3 + 3)];
    expect(pixel(0, 0)).toEqual([10, 20, 30]);
    expect(pixel(1, 1)).toEqual([10, 20, 30]);
    expect(pixel(3, 0)).toEqual([40, 50, 60]);
    expect(pixel(2, 3)).toEqual([100, 110, 120]);
  });

  it("resizes to an exact size, alpha kept", async () => {
    const out = await resizeImage(gradientImage(30, 20, 4), { width: 50, height: 90, kernel: "mitchell" });
    expect(out).toMatchObject({ width: 50, height: 90, channels: 4 });
    expect(out.data.byteLength).toBe(50 * 90 * 4);
    // Alpha is 255 in the top half and 128 in the bottom half of the source.
    expect(out.data[3]).toBe(255);
    expect(out.data[out.data.length - 1]).toBe(128);
  });

  it("validates with field names", async () => {
    const source = gradientImage(8, 8);
    const cases: Array<[Parameters<typeof resizeImage>[1], string, RegExp]> = [
      [{ scale: 0 }, "scale", /from 0.01 to 8/],
      [{ scale: 9 }, "scale", /from 0.01 to 8/],
      [{}, "scale", /either scale or width and height/],
      [{ scale: 2, width: 16, height: 16 }, "scale", /either/],
      [{ width: 16 }, "height", /go together/],
      [{ width: 16.5, height: 4 }, "width", /integer/],
      [
        { scale: 2, kernel: "bicubic" as "cubic" },
        "kernel",
        /one of lanczos3, lanczos2, mitchell, cubic, linear, nearest/,
      ],
      [{ scale: 4, maxOutputPixels: 1000 }, "scale", /gives 32x32 \(1024 pixels\); the limit is 1000/],
    ];
    for (const [options, field, message] of cases) {
      const error = await resizeImage(source, options).catch((e: unknown) => e);
      expect(error).toMatchObject({ field });
      expect((error as Error).message).toMatch(message);
    }
  });
});
