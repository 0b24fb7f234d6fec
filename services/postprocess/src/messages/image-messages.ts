import { type Image, ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { EncodedImage, OutputFormat } from "../encode/encode-image.js";
import type { ImageSource } from "../image/image-source.js";
import type { RawImage } from "../image/raw-image.js";
import type { DeclaredImage } from "../process/postprocessor.js";

const ENCODINGS: Record<OutputFormat, ImageEncoding> = {
  png: ImageEncoding.PNG,
  jpeg: ImageEncoding.JPEG,
  webp: ImageEncoding.WEBP,
  avif: ImageEncoding.AVIF,
};

/** An Image message whose bytes travel in it, as the domain reads it: encoded bytes or raw pixels. */
export function imageSourceOf(image: Image | undefined, field: string): ImageSource {
  if (!image || image.data.length === 0) throw new InvalidArgumentError(field, "is required");
  if (image.encoding !== ImageEncoding.RAW) return { kind: "encoded", bytes: image.data };
  if (image.channels !== 3 && image.channels !== 4)
    throw new InvalidArgumentError(`${field}.channels`, "must be 3 or 4");
  const { data, width, height, channels } = image;
  return { kind: "raw", image: { data, width, height, channels } };
}

/** An Image message whose `byteLength` bytes come later (chunks, shared memory), named by `sizeField`. */
export function declaredImageOf(image: Image, byteLength: number, sizeField: string): DeclaredImage {
  return image.encoding === ImageEncoding.RAW
    ? {
        kind: "raw",
        byteLength,
        sizeField,
        width: image.width,
        height: image.height,
        channels: image.channels,
      }
    : { kind: "encoded", byteLength, sizeField };
}

/** An encoded image as a message; without its bytes when they travel apart (chunks). */
export function encodedImageMessage(encoded: EncodedImage, withData: boolean): Image {
  return {
    $typeName: "dmesh.common.v1.Image",
    encoding: ENCODINGS[encoded.format],
    data: withData ? encoded.bytes : new Uint8Array(0),
    width: encoded.width,
    height: encoded.height,
    channels: encoded.channels,
  };
}

export function rawImageMessage(image: RawImage): Image {
  return {
    $typeName: "dmesh.common.v1.Image",
    encoding: ImageEncoding.RAW,
    data: image.data,
    width: image.width,
    height: image.height,
    channels: image.channels,
  };
}
