import { decodeUntrustedImage, inspectUntrustedImage } from "../limits/decode-untrusted-image.js";
import { ImageInputError } from "../limits/image-input-error.js";
import type { ImageLimits } from "../limits/image-limits.js";
import { checkRawImage, type RawImage } from "./raw-image.js";

/** An input image as a request brings it: pixels, or an encoded file not yet trusted. */
export type ImageSource =
  | { readonly kind: "raw"; readonly image: RawImage }
  | { readonly kind: "encoded"; readonly bytes: Uint8Array };

export interface ImageSize {
  readonly width: number;
  readonly height: number;
}

/** The image's size, checked against the limits without decoding anything (the header of a file). */
export async function inspectImageSource(
  source: ImageSource,
  field: string,
  limits: ImageLimits,
): Promise<ImageSize> {
  if (source.kind === "encoded")
    return inspectUntrustedImage(source.bytes, { field: `${field}.data`, limits });
  checkRawImage(source.image, field);
  return checkRawSize(source.image, field, limits);
}

/** Pixels of the source; `inspectImageSource` first. */
export async function decodeImageSource(
  source: ImageSource,
  field: string,
  limits: ImageLimits,
): Promise<RawImage> {
  if (source.kind === "raw") return source.image;
  return decodeUntrustedImage(source.bytes, { field: `${field}.data`, limits });
}

/** Raw pixels obey the same side and pixel limits as encoded images. */
export function checkRawSize(size: ImageSize, field: string, limits: ImageLimits): ImageSize {
  const { width, height } = size;
  if (width > limits.maxWidth || height > limits.maxHeight || width * height > limits.maxPixels) {
    throw new ImageInputError(
      "too_large",
      field,
      `is ${width}x${height}; the limits are ${limits.maxWidth}x${limits.maxHeight} and ${limits.maxPixels} pixels`,
    );
  }
  return size;
}
