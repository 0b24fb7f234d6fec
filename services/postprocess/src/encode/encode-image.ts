import { InvalidArgumentError } from "@dmesh/runtime/errors";
import sharp, { type Sharp } from "sharp";
import { type RawImage, sharpFromRaw } from "../image/raw-image.js";
import { checkIntegerInRange, checkOneOf } from "../validation/check-number.js";
import { buildUserCommentExif } from "./exif-user-comment.js";
import { insertAfterIhdr, pngTextChunk } from "./png-chunks.js";
import { buildXmpPacket } from "./xmp-packet.js";

export const OUTPUT_FORMATS = ["png", "jpeg", "webp", "avif"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const MIME_TYPES: Readonly<Record<OutputFormat, string>> = {
  png: "image/png",
  jpeg: "image/jpeg",
  webp: "image/webp",
  avif: "image/avif",
};

/** The PNG text keyword A1111 stores its infotext under. */
export const PARAMETERS_KEYWORD = "parameters";

export interface EncodeOptions {
  readonly format: OutputFormat;
  /** jpeg, webp, avif: 1–100; default 80, A1111's `jpeg_quality` default. */
  readonly quality?: number;
  /** webp, avif. */
  readonly lossless?: boolean;
  /** CPU effort, webp 0–6 / avif 0–9; default 4. AVIF at 4 takes seconds per megapixel on a few cores. */
  readonly effort?: number;
  /** png: zlib level 0–9; default 6. */
  readonly compressionLevel?: number;
  /** A1111 infotext to embed: PNG text chunk, or EXIF UserComment plus XMP for the other formats. */
  readonly infotext?: string;
}

export interface EncodedImage {
  readonly bytes: Buffer;
  readonly format: OutputFormat;
  readonly mimeType: string;
  readonly width: number;
  readonly height: number;
  /** 3 or 4: JPEG has no alpha. */
  readonly channels: 3 | 4;
}

const DEFAULT_QUALITY = 80;
const DEFAULT_PNG_COMPRESSION = 6;
const DEFAULT_EFFORT = 4;

/** Encodes pixels; the same pixels and options always give the same bytes. */
export async function encodeImage(image: RawImage, options: EncodeOptions): Promise<EncodedImage> {
  const format = checkOneOf("format", options.format, OUTPUT_FORMATS);
  const infotext = options.infotext;
  if (infotext !== undefined && typeof infotext !== "string") {
    throw new InvalidArgumentError("infotext", "must be a string");
  }
  const bytes =
    format === "png"
      ? await encodePng(image, options, infotext)
      : await encodeWithExif(image, format, options, infotext);
  const channels = format === "jpeg" ? 3 : image.channels;
  return { bytes, format, mimeType: MIME_TYPES[format], width: image.width, height: image.height, channels };
}

async function encodePng(
  image: RawImage,
  options: EncodeOptions,
  infotext: string | undefined,
): Promise<Buffer> {
  rejectOptions(options, "png", ["quality", "lossless", "effort"]);
  const compressionLevel = checkIntegerInRange(
    "compressionLevel",
    options.compressionLevel ?? DEFAULT_PNG_COMPRESSION,
    0,
    9,
  );
  const png = await sharpFromRaw(image).png({ compressionLevel }).toBuffer();
  return infotext === undefined ? png : embedPngInfotext(png, infotext);
}

/**
 * The PNG with A1111's infotext in a `parameters` text chunk before the image data, as Pillow writes it:
 * libvips writes no text chunk that sharp lets us set, so the chunk is spliced into its output.
 */
export function embedPngInfotext(png: Uint8Array, infotext: string): Buffer {
  return insertAfterIhdr(png, [pngTextChunk(PARAMETERS_KEYWORD, infotext)]);
}

async function encodeWithExif(
  image: RawImage,
  format: Exclude<OutputFormat, "png">,
  options: EncodeOptions,
  infotext: string | undefined,
): Promise<Buffer> {
  rejectOptions(
    options,
    format,
    format === "jpeg" ? ["compressionLevel", "lossless", "effort"] : ["compressionLevel"],
  );
  const quality = checkIntegerInRange("quality", options.quality ?? DEFAULT_QUALITY, 1, 100);
  const effort = checkIntegerInRange(
    "effort",
    options.effort ?? DEFAULT_EFFORT,
    0,
    format === "webp" ? 6 : 9,
  );
  const lossless = options.lossless ?? false;
  if (typeof lossless !== "boolean") throw new InvalidArgumentError("lossless", "must be a boolean");

  const pipeline = infotext === undefined ? sharpFromRaw(image) : await withInfotextMetadata(image, infotext);
  switch (format) {
    // A1111 saves RGBA as RGB for JPEG by dropping alpha, not by blending it onto a background.
    case "jpeg":
      return pipeline.removeAlpha().jpeg({ quality }).toBuffer();
    case "webp":
      return pipeline.webp({ quality, lossless, effort }).toBuffer();
    case "avif":
      return pipeline.avif({ quality, lossless, effort }).toBuffer();
  }
}

/**
 * libvips rewrites a UserComment given through `withExif` as ASCII, losing non-ASCII text, but keeps an
 * EXIF block that arrives with its input. So the pixels travel as an uncompressed PNG whose eXIf chunk
 * holds A1111's EXIF, and `keepExif` carries it into the output.
 */
async function withInfotextMetadata(image: RawImage, infotext: string): Promise<Sharp> {
  const png = await sharpFromRaw(image).png({ compressionLevel: 0, adaptiveFiltering: false }).toBuffer();
  const carrier = insertAfterIhdr(png, [{ type: "eXIf", data: buildUserCommentExif(infotext) }]);
  return sharp(carrier).keepExif().withXmp(buildXmpPacket(infotext));
}

/** Options that mean nothing for `format` are refused rather than silently ignored. */
function rejectOptions(
  options: EncodeOptions,
  format: OutputFormat,
  names: readonly (keyof EncodeOptions)[],
) {
  for (const name of names) {
    if (options[name] !== undefined) throw new InvalidArgumentError(name, `does not apply to ${format}`);
  }
}
