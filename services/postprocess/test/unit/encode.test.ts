import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { InvalidArgumentError } from "@dmesh/runtime";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { embedPngInfotext, encodeImage, OUTPUT_FORMATS } from "../../src/encode/encode-image.js";
import { readGenerationParameters } from "../../src/encode/read-generation-parameters.js";
import { formatInfotext } from "../../src/infotext/format-infotext.js";
import { ImageInputError } from "../../src/limits/image-input-error.js";
import { gradientImage } from "../support/test-images.js";

const latin1Infotext = formatInfotext({
  prompt: "a café on the quay, golden hour",
  negativePrompt: "blurry",
  steps: 20,
  sampler: "Euler a",
  cfgScale: 7,
  seed: 42,
  width: 64,
  height: 48,
  model: "tiny, sdxl",
});
const unicodeInfotext = formatInfotext({
  prompt: "夜の東京, neon ✓ <b>&</b>",
  steps: 4,
  sampler: "LCM",
  seed: 7,
  width: 64,
  height: 48,
});

/** Walks the chunk list without the module under test: length, type, data, CRC. */
function chunksByHand(png: Buffer): Array<{ type: string; data: Buffer; crcOk: boolean }> {
  expect(png.subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
  const chunks = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const typeAndData = png.subarray(at + 4, at + 8 + length);
    chunks.push({
      type: typeAndData.toString("latin1", 0, 4),
      data: typeAndData.subarray(4),
      crcOk: crc32(typeAndData) === png.readUInt32BE(at + 8 + length),
    });
    at += 12 + length;
  }
  return chunks;
}

function which(command: string): string | undefined {
  try {
    return execFileSync("which", [command], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

describe("PNG", () => {
  it("puts a tEXt 'parameters' chunk right after IHDR, with a valid CRC, and keeps pixels exact", async () => {
    const image = gradientImage(64, 48);
    const { bytes, mimeType } = await encodeImage(image, { format: "png", infotext: latin1Infotext });
    expect(mimeType).toBe("image/png");
    const chunks = chunksByHand(bytes);
    expect(chunks.map((c) => c.type).slice(0, 2)).toEqual(["IHDR", "tEXt"]);
    expect(chunks.at(-1)?.type).toBe("IEND");
    expect(chunks.every((c) => c.crcOk)).toBe(true);
    expect(chunks[1]?.data).toEqual(
      Buffer.concat([Buffer.from("parameters\0"), Buffer.from(latin1Infotext, "latin1")]),
    );

    const decoded = await sharp(bytes).raw().toBuffer();
    expect(Buffer.compare(decoded, Buffer.from(image.data))).toBe(0);
    expect(await readGenerationParameters(bytes)).toBe(latin1Infotext);
  });

  it("switches to an uncompressed UTF-8 iTXt chunk when the text is not Latin-1, as Pillow does", async () => {
    const { bytes } = await encodeImage(gradientImage(64, 48, 4), {
      format: "png",
      infotext: unicodeInfotext,
    });
    const itxt = chunksByHand(bytes)[1];
    expect(itxt?.type).toBe("iTXt");
    expect(itxt?.data).toEqual(
      Buffer.concat([
        Buffer.from("parameters"),
        Buffer.of(0, 0, 0, 0, 0),
        Buffer.from(unicodeInfotext, "utf8"),
      ]),
    );
    expect(await readGenerationParameters(bytes)).toBe(unicodeInfotext);
  });

  it("embedPngInfotext on sharp's own PNG gives the bytes encodeImage gives (what a direct caller gets)", async () => {
    const image = gradientImage(64, 48);
    const raw = { width: image.width, height: image.height, channels: image.channels };
    const direct = await sharp(image.data, { raw }).png({ compressionLevel: 6 }).toBuffer();
    const embedded = embedPngInfotext(direct, latin1Infotext);
    const { bytes } = await encodeImage(image, { format: "png", infotext: latin1Infotext });
    expect(Buffer.compare(embedded, bytes)).toBe(0);
    expect(await readGenerationParameters(embedded)).toBe(latin1Infotext);
  });

  const exiftool = which("exiftool");
  it.skipIf(!exiftool)(
    `exiftool -Parameters prints the infotext${exiftool ? "" : " (skipped: exiftool is not installed)"}`,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "dmesh-png-"));
      try {
        const file = join(dir, "out.png");
        writeFileSync(
          file,
          (await encodeImage(gradientImage(8, 8), { format: "png", infotext: latin1Infotext })).bytes,
        );
        const printed = execFileSync(exiftool as string, ["-b", "-Parameters", file], { encoding: "utf8" });
        expect(printed).toBe(latin1Infotext);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe("JPEG, WebP and AVIF", () => {
  it.each(["jpeg", "webp", "avif"] as const)(
    "%s carries A1111's UNICODE UserComment and an XMP packet",
    async (format) => {
      const { bytes } = await encodeImage(gradientImage(64, 48), {
        format,
        quality: 85,
        infotext: unicodeInfotext,
      });
      const metadata = await sharp(bytes).metadata();
      expect(metadata.width).toBe(64);
      // Find the UserComment bytes without the module's EXIF reader.
      const exif = metadata.exif as Buffer;
      const at = exif.indexOf("UNICODE\0", 0, "latin1");
      expect(at).toBeGreaterThan(0);
      const utf16be = Buffer.from(unicodeInfotext, "utf16le").swap16();
      expect(exif.subarray(at + 8, at + 8 + utf16be.length)).toEqual(utf16be);
      expect(metadata.xmp?.toString("utf8")).toContain("夜の東京, neon ✓ &lt;b&gt;&amp;&lt;/b&gt;");
      expect(await readGenerationParameters(bytes)).toBe(unicodeInfotext);
    },
  );

  it("puts the EXIF in a JPEG APP1 segment", async () => {
    const { bytes } = await encodeImage(gradientImage(32, 32), { format: "jpeg", infotext: latin1Infotext });
    expect(bytes.readUInt16BE(0)).toBe(0xffd8);
    const app1 = bytes.indexOf(Buffer.from([0xff, 0xe1]));
    expect(bytes.toString("latin1", app1 + 4, app1 + 10)).toBe("Exif\0\0");
  });

  it("drops alpha for JPEG the way A1111 does (colour kept, not blended onto black)", async () => {
    const image = gradientImage(16, 16, 4);
    image.data.forEach((_, i) => {
      if (i % 4 === 3) image.data[i] = 0;
    });
    const { bytes } = await encodeImage(image, { format: "jpeg", quality: 100 });
    const rgb = await sharp(bytes).raw().toBuffer();
    // Top-right pixel is bright red-ish in the source; blending onto black would make it ~0.
    const i = 15 * 3;
    expect(rgb[i]).toBeGreaterThan(200);
  });

  it("leaves metadata out when no infotext is given", async () => {
    const { bytes } = await encodeImage(gradientImage(16, 16), { format: "webp" });
    expect(await readGenerationParameters(bytes)).toBeUndefined();
  });
});

describe("determinism and validation", () => {
  it.each(OUTPUT_FORMATS)("%s: same pixels and options give the same bytes", async (format) => {
    const options = { format, infotext: latin1Infotext } as const;
    const a = await encodeImage(gradientImage(48, 40, 4), options);
    const b = await encodeImage(gradientImage(48, 40, 4), options);
    expect(Buffer.compare(a.bytes, b.bytes)).toBe(0);
  });

  it("names the offending field", async () => {
    const image = gradientImage(8, 8);
    const cases: Array<[Parameters<typeof encodeImage>[1], string]> = [
      [{ format: "jpeg", quality: 0 }, "quality"],
      [{ format: "jpeg", compressionLevel: 9 }, "compressionLevel"],
      [{ format: "png", quality: 90 }, "quality"],
      [{ format: "png", compressionLevel: 10 }, "compressionLevel"],
      [{ format: "webp", effort: 7 }, "effort"],
      [{ format: "jpeg", effort: 2 }, "effort"],
      [{ format: "gif" as "png" }, "format"],
    ];
    for (const [options, field] of cases) {
      await expect(encodeImage(image, options)).rejects.toThrow(expect.objectContaining({ field }));
    }
    await expect(encodeImage({ ...image, width: 9 }, { format: "png" })).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(encodeImage({ ...image, width: 9 }, { format: "png" })).rejects.toThrow(
      /image\.data: holds 192 bytes/,
    );
  });

  it("reports unreadable bytes as invalid_image", async () => {
    await expect(readGenerationParameters(Buffer.from("definitely not an image"))).rejects.toThrow(
      ImageInputError,
    );
    const png = (await encodeImage(gradientImage(8, 8), { format: "png", infotext: "x" })).bytes;
    png[40] = (png[40] ?? 0) ^ 0xff; // corrupt the tEXt chunk: its CRC no longer matches
    await expect(readGenerationParameters(png)).rejects.toThrow(/bad CRC/);
  });
});
