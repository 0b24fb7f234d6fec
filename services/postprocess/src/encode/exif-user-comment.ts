/**
 * The EXIF block A1111 writes into JPEG, WebP and AVIF files: `piexif.dump({"Exif": {UserComment:
 * UserComment.dump(text, encoding="unicode")}})`, a big-endian TIFF whose IFD0 points to an Exif IFD
 * holding only UserComment = "UNICODE\0" + UTF-16BE text. Reading accepts what other writers produce.
 */

const EXIF_IFD_POINTER = 0x8769;
const USER_COMMENT = 0x9286;
const TYPE_LONG = 4;
const TYPE_UNDEFINED = 7;
const UNICODE_PREFIX = Buffer.from("UNICODE\0", "latin1");
const ASCII_PREFIX = Buffer.from("ASCII\0\0\0", "latin1");
const JIS_PREFIX = Buffer.from("JIS\0\0\0\0\0", "latin1");

/** The TIFF bytes (no "Exif\0\0" header) holding `text` as UserComment. */
export function buildUserCommentExif(text: string): Buffer {
  const comment = Buffer.concat([UNICODE_PREFIX, Buffer.from(text, "utf16le").swap16()]);
  const ifd0 = 8;
  const exifIfd = ifd0 + 18;
  const commentOffset = exifIfd + 18;
  const tiff = Buffer.alloc(commentOffset + comment.length);
  tiff.write("MM", 0, "latin1");
  tiff.writeUInt16BE(42, 2);
  tiff.writeUInt32BE(ifd0, 4);
  writeSingleEntryIfd(tiff, ifd0, EXIF_IFD_POINTER, TYPE_LONG, 1, exifIfd);
  writeSingleEntryIfd(tiff, exifIfd, USER_COMMENT, TYPE_UNDEFINED, comment.length, commentOffset);
  comment.copy(tiff, commentOffset);
  return tiff;
}

function writeSingleEntryIfd(
  tiff: Buffer,
  at: number,
  tag: number,
  type: number,
  count: number,
  value: number,
) {
  tiff.writeUInt16BE(1, at);
  tiff.writeUInt16BE(tag, at + 2);
  tiff.writeUInt16BE(type, at + 4);
  tiff.writeUInt32BE(count, at + 6);
  tiff.writeUInt32BE(value, at + 10);
  tiff.writeUInt32BE(0, at + 14); // no next IFD
}

/**
 * UserComment from an EXIF block (TIFF bytes, with or without the "Exif\0\0" header), decoded by its
 * 8-byte character-code prefix; undefined when absent. Every offset is bounds-checked.
 */
export function readUserComment(exif: Uint8Array): string | undefined {
  let tiff = Buffer.from(exif.buffer, exif.byteOffset, exif.byteLength);
  if (tiff.toString("latin1", 0, 6) === "Exif\0\0") tiff = tiff.subarray(6);
  const order = tiff.toString("latin1", 0, 2);
  if (tiff.length < 8 || (order !== "MM" && order !== "II")) return undefined;
  const bigEndian = order === "MM";
  const u16 = (at: number) => (bigEndian ? tiff.readUInt16BE(at) : tiff.readUInt16LE(at));
  const u32 = (at: number) => (bigEndian ? tiff.readUInt32BE(at) : tiff.readUInt32LE(at));

  const findEntry = (ifd: number, tag: number): { count: number; valueAt: number } | undefined => {
    if (ifd + 2 > tiff.length) return undefined;
    const entries = u16(ifd);
    for (let i = 0; i < entries; i++) {
      const at = ifd + 2 + i * 12;
      if (at + 12 > tiff.length) return undefined;
      if (u16(at) === tag) {
        const count = u32(at + 4);
        // Values of four bytes or fewer sit in the entry itself.
        return { count, valueAt: count <= 4 ? at + 8 : u32(at + 8) };
      }
    }
    return undefined;
  };

  const pointer = findEntry(u32(4), EXIF_IFD_POINTER);
  if (!pointer) return undefined;
  const entry = findEntry(u32(pointer.valueAt), USER_COMMENT);
  if (!entry || entry.valueAt + entry.count > tiff.length) return undefined;
  return decodeUserComment(tiff.subarray(entry.valueAt, entry.valueAt + entry.count), bigEndian);
}

function decodeUserComment(value: Buffer, bigEndian: boolean): string {
  const prefix = value.subarray(0, 8);
  const body = value.subarray(8);
  if (prefix.equals(UNICODE_PREFIX)) return decodeUtf16(body, bigEndian);
  if (prefix.equals(ASCII_PREFIX)) return stripTrailingNuls(body.toString("latin1"));
  if (prefix.equals(JIS_PREFIX)) return stripTrailingNuls(new TextDecoder("shift_jis").decode(body));
  // Undefined code: A1111 falls back to decoding the whole value as UTF-8.
  return stripTrailingNuls(value.toString("utf8").replace(/^\0+/, ""));
}

/**
 * piexif writes UTF-16BE whatever the TIFF byte order; exiftool follows the TIFF byte order.
 * A byte-order mark settles it; otherwise the TIFF order is the better guess.
 */
function decodeUtf16(body: Buffer, tiffBigEndian: boolean): string {
  const even = body.subarray(0, body.length - (body.length % 2));
  let bigEndian = tiffBigEndian;
  let start = 0;
  if (even[0] === 0xfe && even[1] === 0xff) [bigEndian, start] = [true, 2];
  else if (even[0] === 0xff && even[1] === 0xfe) [bigEndian, start] = [false, 2];
  const units = Buffer.from(even.subarray(start));
  if (bigEndian) units.swap16();
  return stripTrailingNuls(units.toString("utf16le"));
}

function stripTrailingNuls(text: string): string {
  return text.replace(/\0+$/, "");
}
