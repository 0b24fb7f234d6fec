import { deflateSync, inflateSync } from "node:zlib";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { encodePngChunk, PNG_SIGNATURE, readPngChunks } from "../../src/encode/png-chunks.js";
import { decodeUntrustedImage } from "../../src/limits/decode-untrusted-image.js";
import { ImageInputError } from "../../src/limits/image-input-error.js";
import { gradientImage } from "../support/test-images.js";

/**
 * A real decompression bomb: a complete, valid 30000x30000 1-bit greyscale PNG of one colour.
 * ~110 KB on disk; its IDAT inflates to 112.5 MB and the decoded RGB image would take 2.7 GB.
 */
function decompressionBomb(side = 30_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([1, 0, 0, 0, 0], 8); // bit depth 1, greyscale, deflate, filter 0, no interlace
  const scanlines = Buffer.alloc(side * (1 + Math.ceil(side / 8))); // filter byte 0 + all-black bits
  return Buffer.concat([
    PNG_SIGNATURE,
    encodePngChunk({ type: "IHDR", data: ihdr }),
    encodePngChunk({ type: "IDAT", data: deflateSync(scanlines, { level: 9 }) }),
    encodePngChunk({ type: "IEND", data: Buffer.alloc(0) }),
  ]);
}

async function expectRejected(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ImageInputError);
  expect(error).toMatchObject({ code });
  expect((error as Error).message).toMatch(message);
}

async function png(image = gradientImage(64, 64)): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } })
    .png()
    .toBuffer();
}

describe("decodeUntrustedImage rejects", () => {
  it("a real decompression bomb from its header, without decoding it", async () => {
    const bomb = decompressionBomb();
    expect(bomb.length).toBeLessThan(150_000);
    // It is a genuine, complete PNG: every CRC checks and the image data inflates to the full size.
    const idat = readPngChunks(bomb).find((c) => c.type === "IDAT");
    expect(inflateSync(idat?.data ?? Buffer.alloc(0)).length).toBe(30_000 * 3751);
    expect(await sharp(bomb, { limitInputPixels: false }).metadata()).toMatchObject({
      width: 30_000,
      height: 30_000,
    });

    await expectRejected(
      decodeUntrustedImage(bomb, { field: "init_image" }),
      "too_large",
      /^init_image: claims 30000x30000; the limit is 8192x8192$/,
    );
    await expectRejected(
      decodeUntrustedImage(bomb, { limits: { maxWidth: 65_535, maxHeight: 65_535 } }),
      "too_large",
      /claims 30000x30000 \(900000000 pixels\); the limit is 16777216 pixels/,
    );
  });

  it("a truncated PNG", async () => {
    const whole = await png();
    await expectRejected(
      decodeUntrustedImage(whole.subarray(0, Math.floor(whole.length / 2))),
      "invalid_image",
      /cannot be decoded/,
    );
  });

  it("a PNG whose image data is corrupt", async () => {
    const bytes = await png();
    const idat = bytes.indexOf("IDAT", 0, "latin1");
    for (let i = idat + 20; i < idat + 60; i++) bytes[i] = (bytes[i] ?? 0) ^ 0x5a;
    await expectRejected(decodeUntrustedImage(bytes), "invalid_image", /cannot be decoded/);
  });

  it("random bytes, empty input and oversize input", async () => {
    let state = 12345;
    const random = Buffer.alloc(4096).map(() => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state >> 16;
    });
    await expectRejected(decodeUntrustedImage(random), "invalid_image", /unsupported image format/);
    await expectRejected(decodeUntrustedImage(new Uint8Array(0)), "invalid_image", /^image: is empty$/);
    await expectRejected(
      decodeUntrustedImage(await png(), { limits: { maxBytes: 100 } }),
      "too_large",
      /the limit is 100$/,
    );
  });

  it("formats that are not accepted", async () => {
    const gif = await sharp(await png())
      .gif()
      .toBuffer();
    await expectRejected(
      decodeUntrustedImage(gif),
      "invalid_image",
      /format gif is not accepted \(png, jpeg, webp, avif\)/,
    );
    const webp = await sharp(await png())
      .webp()
      .toBuffer();
    await expectRejected(
      decodeUntrustedImage(webp, { limits: { formats: ["png"] } }),
      "invalid_image",
      /format webp/,
    );
  });

  it("bad limits, naming the limit", async () => {
    await expect(decodeUntrustedImage(await png(), { limits: { maxPixels: 0 } })).rejects.toThrow(
      expect.objectContaining({ field: "limits.maxPixels" }),
    );
  });
});

describe("decodeUntrustedImage decodes", () => {
  it("PNG pixels exactly, dropping or keeping alpha on request", async () => {
    const source = gradientImage(40, 30, 4);
    const bytes = await png(source);
    const rgb = await decodeUntrustedImage(bytes);
    expect(rgb).toMatchObject({ width: 40, height: 30, channels: 3 });
    expect([...rgb.data.subarray(0, 6)]).toEqual([
      ...source.data.subarray(0, 3),
      ...source.data.subarray(4, 7),
    ]);
    const rgba = await decodeUntrustedImage(bytes, { keepAlpha: true });
    expect(Buffer.compare(Buffer.from(rgba.data), Buffer.from(source.data))).toBe(0);
  });

  it("JPEG with EXIF orientation upright, and greyscale or 16-bit input as 8-bit RGB", async () => {
    const rotated = await sharp(await png(gradientImage(40, 20)))
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect(await decodeUntrustedImage(rotated)).toMatchObject({ width: 20, height: 40, channels: 3 });

    const grey16 = await sharp(await png())
      .toColourspace("grey16")
      .png()
      .toBuffer();
    expect((await sharp(grey16).metadata()).depth).toBe("ushort");
    const decoded = await decodeUntrustedImage(grey16);
    expect(decoded).toMatchObject({ width: 64, height: 64, channels: 3 });
    expect(decoded.data.byteLength).toBe(64 * 64 * 3);
  });

  it("WebP and AVIF", async () => {
    for (const format of ["webp", "avif"] as const) {
      const bytes = await sharp(await png())
        .toFormat(format)
        .toBuffer();
      expect(await decodeUntrustedImage(bytes)).toMatchObject({ width: 64, height: 64, channels: 3 });
    }
  });
});
