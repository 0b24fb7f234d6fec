import type { MessageInitShape } from "@bufbuild/protobuf";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import type { ImageInput, ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";

/** A raw RGB image input: a diagonal gradient, or white in the given square (a mask). */
export function rawImageInput(
  size: number,
  square?: { from: number; to: number },
): MessageInitShape<typeof ImageInputSchema> {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      const inside = square && x >= square.from && x < square.to && y >= square.from && y < square.to;
      const value = square ? (inside ? 255 : 0) : Math.round(((x + y) / (2 * size)) * 255);
      data.set([value, square ? value : 255 - value, square ? value : 128], i);
    }
  }
  return {
    source: {
      case: "image",
      value: { encoding: ImageEncoding.RAW, data, width: size, height: size, channels: 3 },
    },
  };
}

export type { ImageInput };
