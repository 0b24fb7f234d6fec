import type { Image, SharedMemoryRef } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { RawImage } from "../image/raw-image.js";
import { declaredImageOf, imageSourceOf } from "../messages/image-messages.js";
import type { Postprocessor, UpscalePlan } from "../process/postprocessor.js";
import type { RegionSlice, SharedMemoryRegions } from "./shared-memory-regions.js";

/**
 * A request's image in and its answer's image out: each inside the message, or through a shared-memory
 * region the caller names (same host), under the same limits either way.
 */
export class SharedMemoryIo {
  constructor(
    private readonly postprocessor: Postprocessor,
    private readonly regions: SharedMemoryRegions,
  ) {}

  /**
   * Runs `work` on the request's image (field "image"): from the message, or read from the caller's region
   * once the request is admitted.
   */
  async withInput<T>(
    image: Image | undefined,
    upscale: UpscalePlan | undefined,
    signal: AbortSignal,
    work: (image: RawImage) => Promise<T>,
  ): Promise<T> {
    const ref = image?.sharedMemory;
    if (!image || !ref)
      return this.postprocessor.withImage(imageSourceOf(image, "image"), "image", upscale, signal, work);
    if (image.data.length > 0)
      throw new InvalidArgumentError("image.data", "must be empty when image.shared_memory is set");
    const slice = await this.regions.check(ref, "image.shared_memory", "read");
    return this.postprocessor.withDeclaredImage(
      declaredImageOf(image, slice.byteSize, "image.shared_memory.byte_size"),
      () => this.regions.read(slice),
      "image",
      upscale,
      signal,
      work,
    );
  }

  /** The caller's output region, checked before any work is done for it. */
  outputRegion(ref: SharedMemoryRef | undefined): Promise<RegionSlice | undefined> {
    return ref ? this.regions.check(ref, "output_shared_memory", "write") : Promise.resolve(undefined);
  }

  /** The answer's image: as it is, or written into the caller's output region and naming it. */
  async deliver(image: Image, output: RegionSlice | undefined): Promise<Image> {
    if (!output) return image;
    const written = await this.regions.write(output, image.data);
    return {
      ...image,
      data: new Uint8Array(0),
      sharedMemory: { $typeName: "dmesh.common.v1.SharedMemoryRef", ...written },
    };
  }
}
