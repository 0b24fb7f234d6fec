import { extname } from "node:path";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";

/** The encoding an image file's extension names (PNG unless it says otherwise). */
export function encodingOf(file: string): ImageEncoding {
  switch (extname(file).toLowerCase()) {
    case ".jpg":
    case ".jpeg":
      return ImageEncoding.JPEG;
    case ".webp":
      return ImageEncoding.WEBP;
    case ".avif":
      return ImageEncoding.AVIF;
    default:
      return ImageEncoding.PNG;
  }
}
