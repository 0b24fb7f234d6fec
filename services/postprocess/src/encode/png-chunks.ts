import { crc32, inflateSync } from "node:zlib";

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface PngChunk {
  readonly type: string;
  readonly data: Uint8Array;
}

export interface PngText {
  readonly keyword: string;
  readonly text: string;
}

/** Bounds what a compressed text chunk may inflate to: metadata, not a second decompression bomb. */
const MAX_TEXT_BYTES = 1 << 20;
const IHDR_END = PNG_SIGNATURE.length + 8 + 13 + 4;

export function isPng(bytes: Uint8Array): boolean {
  return (
    bytes.length >= PNG_SIGNATURE.length &&
    Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(PNG_SIGNATURE)
  );
}

/** One chunk as stored: length, type, data, CRC-32 over type and data. */
export function encodePngChunk(chunk: PngChunk): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(chunk.data.length, 0);
  head.write(chunk.type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(chunk.data, crc32(head.subarray(4))), 0);
  return Buffer.concat([head, chunk.data, crc]);
}

/** The PNG with `chunks` placed right after IHDR, before any image data. */
export function insertAfterIhdr(png: Uint8Array, chunks: readonly PngChunk[]): Buffer {
  const bytes = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (!isPng(bytes) || bytes.toString("latin1", 12, 16) !== "IHDR")
    throw new Error("PNG does not start with IHDR");
  return Buffer.concat([
    bytes.subarray(0, IHDR_END),
    ...chunks.map(encodePngChunk),
    bytes.subarray(IHDR_END),
  ]);
}

/**
 * The chunk list, checking the signature, every length and every CRC.
 * Stops after IEND; anything malformed throws, since the caller reads untrusted bytes.
 */
export function readPngChunks(png: Uint8Array): PngChunk[] {
  if (!isPng(png)) throw new Error("not a PNG (bad signature)");
  const bytes = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  const chunks: PngChunk[] = [];
  let offset = PNG_SIGNATURE.length;
  while (offset < bytes.length) {
    if (offset + 12 > bytes.length) throw new Error(`truncated chunk header at byte ${offset}`);
    const length = bytes.readUInt32BE(offset);
    const end = offset + 12 + length;
    if (end > bytes.length) throw new Error(`chunk at byte ${offset} runs past the end of the file`);
    const type = bytes.toString("latin1", offset + 4, offset + 8);
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (crc32(data, crc32(bytes.subarray(offset + 4, offset + 8))) !== bytes.readUInt32BE(end - 4)) {
      throw new Error(`bad CRC in ${type} chunk at byte ${offset}`);
    }
    chunks.push({ type, data });
    offset = end;
    if (type === "IEND") break;
  }
  return chunks;
}

/**
 * A text chunk the way Pillow's `PngInfo.add_text` (which A1111 uses) builds it: `tEXt` when the text is
 * Latin-1, otherwise an uncompressed `iTXt` with empty language and translated keyword, UTF-8 text.
 */
export function pngTextChunk(keyword: string, text: string): PngChunk {
  const key = Buffer.from(keyword, "latin1");
  if (isLatin1(text)) {
    return { type: "tEXt", data: Buffer.concat([key, Buffer.of(0), Buffer.from(text, "latin1")]) };
  }
  // keyword \0, compression flag 0, method 0, language "" \0, translated keyword "" \0, text
  return { type: "iTXt", data: Buffer.concat([key, Buffer.of(0, 0, 0, 0, 0), Buffer.from(text, "utf8")]) };
}

/** Keyword and text of a tEXt, zTXt or iTXt chunk; undefined for other chunk types. */
export function decodePngText(chunk: PngChunk): PngText | undefined {
  const data = Buffer.from(chunk.data.buffer, chunk.data.byteOffset, chunk.data.byteLength);
  const nul = data.indexOf(0);
  if (nul < 0) return undefined;
  const keyword = data.toString("latin1", 0, nul);
  switch (chunk.type) {
    case "tEXt":
      return { keyword, text: data.toString("latin1", nul + 1) };
    case "zTXt":
      return { keyword, text: inflateText(data.subarray(nul + 2)).toString("latin1") };
    case "iTXt": {
      const compressed = data[nul + 1] === 1;
      const languageEnd = data.indexOf(0, nul + 3);
      const translatedEnd = languageEnd < 0 ? -1 : data.indexOf(0, languageEnd + 1);
      if (translatedEnd < 0) return undefined;
      const body = data.subarray(translatedEnd + 1);
      return { keyword, text: (compressed ? inflateText(body) : body).toString("utf8") };
    }
    default:
      return undefined;
  }
}

function inflateText(data: Uint8Array): Buffer {
  return inflateSync(data, { maxOutputLength: MAX_TEXT_BYTES });
}

function isLatin1(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return false;
  return true;
}
