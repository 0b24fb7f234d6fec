import { type Image, ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";

const MEDIA_TYPES: Partial<Record<ImageEncoding, string>> = {
  [ImageEncoding.PNG]: "image/png",
  [ImageEncoding.JPEG]: "image/jpeg",
  [ImageEncoding.WEBP]: "image/webp",
  [ImageEncoding.AVIF]: "image/avif",
};

/**
 * A URL an <img> can show for an Image message: encoded files as they are, raw pixels (live previews are
 * raw RGB at latent size) drawn onto a canvas. Undefined when it cannot be shown.
 */
export function imageUrl(image: Image): string | undefined {
  if (image.encoding !== ImageEncoding.RAW) {
    const type = MEDIA_TYPES[image.encoding];
    return type && image.data.length > 0
      ? URL.createObjectURL(new Blob([image.data as Uint8Array<ArrayBuffer>], { type }))
      : undefined;
  }
  const { width, height, channels, data } = image;
  if (!(width > 0 && height > 0) || data.length !== width * height * channels) return undefined;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const src = p * channels;
    const gray = channels < 3;
    rgba[p * 4] = data[src] ?? 0;
    rgba[p * 4 + 1] = data[gray ? src : src + 1] ?? 0;
    rgba[p * 4 + 2] = data[gray ? src : src + 2] ?? 0;
    rgba[p * 4 + 3] = channels === 4 ? (data[src + 3] ?? 255) : 255;
  }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d")?.putImageData(new ImageData(rgba, width, height), 0, 0);
  return canvas.toDataURL("image/png");
}

/** The encoding of an uploaded file by its media type; undefined for types the mesh does not read. */
export function encodingOf(mediaType: string): ImageEncoding | undefined {
  for (const [encoding, type] of Object.entries(MEDIA_TYPES)) {
    if (type === mediaType) return Number(encoding) as ImageEncoding;
  }
  return undefined;
}
