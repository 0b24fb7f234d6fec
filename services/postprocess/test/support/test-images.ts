import { crc32, deflateSync } from "node:zlib";
import type { RawImage } from "../../src/image/raw-image.js";

/** A smooth RGB(A) gradient with a hard edge: real structure for codecs and filters to work on. */
export function gradientImage(width: number, height: number, channels: 3 | 4 = 3): RawImage {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      data[i] = Math.round((255 * x) / Math.max(1, width - 1));
      data[i + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      data[i + 2] = x > width / 2 ? 200 : 40;
      if (channels === 4) data[i + 3] = y < height / 2 ? 255 : 128;
    }
  }
  return { data, width, height, channels };
}

/** A PNG whose header claims `width` x `height` but whose data is a few bytes: a decompression bomb's shape. */
export function pngHeaderOnly(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const idat = chunk("IDAT", deflateSync(Buffer.alloc(1024)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    idat,
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
