import sharp, { type Metadata } from "sharp";
import { type RawImage, toRawImage } from "../image/raw-image.js";
import { ImageInputError } from "./image-input-error.js";
import { type ImageLimits, type InputFormat, resolveImageLimits } from "./image-limits.js";

export interface DecodeOptions {
  /** Request field the bytes came from, named in errors. Default "image". */
  readonly field?: string;
  /** Keep (or add) an alpha channel: RGBA out. Default false: RGB, alpha dropped. */
  readonly keepAlpha?: boolean;
  readonly limits?: Partial<ImageLimits>;
}

/** What an untrusted image's header says, once it has passed the limits. */
export interface ImageHeader {
  readonly format: InputFormat;
  readonly width: number;
  readonly height: number;
}

/**
 * Checks bytes from a client against the limits from their header alone, without decoding a pixel, or
 * throws an ImageInputError: "too_large" for bytes, sides or pixel counts over the limits (so a
 * decompression bomb costs nothing), "invalid_image" for anything unreadable, unsupported or not allowed.
 */
export async function inspectUntrustedImage(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Promise<ImageHeader> {
  const field = options.field ?? "image";
  const limits = resolveImageLimits(options.limits);
  if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0) {
    throw new ImageInputError("invalid_image", field, "is empty");
  }
  if (bytes.byteLength > limits.maxBytes) {
    throw new ImageInputError(
      "too_large",
      field,
      `is ${bytes.byteLength} bytes; the limit is ${limits.maxBytes}`,
    );
  }

  const header = await readHeader(bytes, field);
  const format = inputFormatOf(header);
  if (format === undefined || !limits.formats.includes(format)) {
    const name = format ?? header.format ?? "unknown";
    throw new ImageInputError(
      "invalid_image",
      field,
      `format ${name} is not accepted (${limits.formats.join(", ")})`,
    );
  }
  const { width, height } = checkDimensions(header, limits, field);
  return { format, width, height };
}

/**
 * Decodes bytes from a client into 8-bit sRGB pixels, EXIF orientation applied, after
 * `inspectUntrustedImage`'s checks; "invalid_image" also covers corrupt or truncated pixel data.
 */
export async function decodeUntrustedImage(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): Promise<RawImage> {
  const field = options.field ?? "image";
  const limits = resolveImageLimits(options.limits);
  await inspectUntrustedImage(bytes, options);
  // "error" rejects truncated and corrupt data while tolerating mere warnings such as extra bytes.
  const pipeline = sharp(bytes, {
    limitInputPixels: limits.maxPixels,
    failOn: "error",
    autoOrient: true,
  }).toColourspace("srgb");
  try {
    return await toRawImage(options.keepAlpha ? pipeline.ensureAlpha() : pipeline.removeAlpha());
  } catch (error) {
    throw fromSharpError(error, field);
  }
}

async function readHeader(bytes: Uint8Array, field: string): Promise<Metadata> {
  try {
    // Only the header is read here, so libvips' pixel limit can wait for the decode; our own check
    // below then says what the image claims.
    return await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw fromSharpError(error, field);
  }
}

function inputFormatOf(header: Metadata): InputFormat | undefined {
  switch (header.format) {
    case "png":
    case "jpeg":
    case "webp":
      return header.format;
    // libheif reports AVIF as heif; the codec tells AVIF (av1) from HEIC (hevc).
    case "heif":
      return header.compression === "av1" ? "avif" : undefined;
    default:
      return undefined;
  }
}

function checkDimensions(
  header: Metadata,
  limits: ImageLimits,
  field: string,
): { width: number; height: number } {
  const { width, height } = header;
  if (!width || !height) throw new ImageInputError("invalid_image", field, "has no dimensions in its header");
  const claims = `claims ${width}x${height}`;
  if (width > limits.maxWidth || height > limits.maxHeight) {
    throw new ImageInputError(
      "too_large",
      field,
      `${claims}; the limit is ${limits.maxWidth}x${limits.maxHeight}`,
    );
  }
  if (width * height > limits.maxPixels) {
    throw new ImageInputError(
      "too_large",
      field,
      `${claims} (${width * height} pixels); the limit is ${limits.maxPixels} pixels`,
    );
  }
  return { width, height };
}

function fromSharpError(error: unknown, field: string): ImageInputError {
  const message = error instanceof Error ? error.message : String(error);
  // libvips' own pixel limit fires if the header under-reported the size.
  const code = /exceeds pixel limit/i.test(message) ? "too_large" : "invalid_image";
  return new ImageInputError(code, field, `cannot be decoded: ${message.trim()}`);
}
