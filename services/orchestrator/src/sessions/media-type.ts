import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";

/** The media type an encoded image is stored and served under. */
export function mediaTypeOf(encoding: ImageEncoding): string {
  switch (encoding) {
    case ImageEncoding.JPEG:
      return "image/jpeg";
    case ImageEncoding.WEBP:
      return "image/webp";
    case ImageEncoding.AVIF:
      return "image/avif";
    default:
      return "image/png";
  }
}

/** The encoding of a stored image, from its media type. */
export function encodingOf(mediaType: string): ImageEncoding {
  switch (mediaType) {
    case "image/jpeg":
      return ImageEncoding.JPEG;
    case "image/webp":
      return ImageEncoding.WEBP;
    case "image/avif":
      return ImageEncoding.AVIF;
    default:
      return ImageEncoding.PNG;
  }
}
