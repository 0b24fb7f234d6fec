import sharp from "sharp";
import { ImageInputError } from "../limits/image-input-error.js";
import { PARAMETERS_KEYWORD } from "./encode-image.js";
import { readUserComment } from "./exif-user-comment.js";
import { decodePngText, isPng, readPngChunks } from "./png-chunks.js";

/**
 * The infotext stored in an image the way A1111 reads it back: the PNG "parameters" text chunk, else
 * the EXIF UserComment (JPEG, WebP, AVIF, or a PNG's eXIf). Undefined when there is none.
 */
export async function readGenerationParameters(
  bytes: Uint8Array,
  field = "image",
): Promise<string | undefined> {
  if (isPng(bytes)) {
    for (const chunk of pngChunksOf(bytes, field)) {
      const text = decodePngText(chunk);
      if (text?.keyword === PARAMETERS_KEYWORD) return text.text;
    }
  }
  let exif: Buffer | undefined;
  try {
    exif = (await sharp(bytes).metadata()).exif;
  } catch (error) {
    throw new ImageInputError(
      "invalid_image",
      field,
      `cannot read image metadata: ${(error as Error).message}`,
    );
  }
  return exif === undefined ? undefined : readUserComment(exif);
}

function pngChunksOf(bytes: Uint8Array, field: string) {
  try {
    return readPngChunks(bytes);
  } catch (error) {
    throw new ImageInputError("invalid_image", field, (error as Error).message);
  }
}
