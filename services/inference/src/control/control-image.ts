import type { Image } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import sharp from "sharp";
import { MAX_CONTROL_PIXELS } from "./control-map.js";
import { type RgbImage, toRgb } from "./rgb-image.js";

/**
 * A control image (raw, or a file sharp reads) at its own size as RGB, made as the ControlNet extension
 * makes its input (`HWC3`: gray repeated, alpha over white). No EXIF rotation, as PIL's arrays have none.
 * An unreadable or oversized image is INVALID_ARGUMENT naming `field`.
 */
export async function decodeControlImage(image: Image, field: string): Promise<RgbImage> {
  if (image.encoding === ImageEncoding.RAW) {
    checkPixels(image.width, image.height, field);
    return toRgb(image.data, image.width, image.height, image.channels);
  }
  try {
    const { data, info } = await sharp(image.data, { limitInputPixels: MAX_CONTROL_PIXELS, failOn: "error" })
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    checkPixels(info.width, info.height, field);
    return toRgb(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      info.width,
      info.height,
      info.channels,
    );
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(field, `is not a readable image: ${(err as Error).message.slice(0, 120)}`);
  }
}

function checkPixels(width: number, height: number, field: string): void {
  if (width * height > MAX_CONTROL_PIXELS) {
    throw new InvalidArgumentError(field, `${width}x${height} is more than ${MAX_CONTROL_PIXELS} pixels`);
  }
}

/** A control map as an Image message: PNG (lossless, for previews) or raw RGB. */
export async function encodeControlMap(map: RgbImage, encoding: "png" | "raw"): Promise<Image> {
  const { width, height } = map;
  const data =
    encoding === "raw"
      ? map.data
      : new Uint8Array(
          await sharp(map.data, { raw: { width, height, channels: 3 } })
            .png()
            .toBuffer(),
        );
  return {
    $typeName: "dmesh.common.v1.Image",
    encoding: encoding === "raw" ? ImageEncoding.RAW : ImageEncoding.PNG,
    data,
    width,
    height,
    channels: 3,
  };
}
