import type { RunClock } from "@dmesh/onnx";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { ResolvedSpec } from "@dmesh/spec";
import type { LoadedModel } from "../models/loaded-model.js";
import type { Generator } from "../random/index.js";
import type { Scheduler } from "../schedulers/index.js";
import { binarizeMask, decodeInputImage, maskToLatentGrid, rgb8ToVaeInput } from "./pixels.js";
import { encodeImage, type LatentDistribution, type RequestVae, sampleLatents } from "./vae.js";

/**
 * A request's input images, decoded and VAE-encoded once: every image of the request samples its own latents
 * from these distributions with its own generator.
 */
export interface InputImages {
  readonly image: LatentDistribution;
  /** Inpainting: the {0,1} mask on the latent grid (1 = repaint). */
  readonly latentMask: Float32Array | undefined;
  /** 9-channel inpainting UNets: the encoding of the image with the masked part blacked out. */
  readonly maskedImage: LatentDistribution | undefined;
  /** The scaling factor of the VAE that encoded them (a `models.vae` suite's, or the model's own). */
  readonly scalingFactor: number;
}

/** One image's starting point. */
export interface InitialLatents {
  readonly latents: Float32Array;
  /** 4-channel inpainting: what every step pastes back outside the mask (the image, re-noised). */
  readonly blend:
    | { readonly imageLatents: Float32Array; readonly noise: Float32Array; readonly mask: Float32Array }
    | undefined;
  /** 9-channel inpainting: the mask and masked-image latents appended to every model input. */
  readonly extraChannels: readonly Float32Array[];
}

/** Decodes and encodes the init image (and mask) of an img2img or inpainting request. */
export async function readInputImages(
  model: LoadedModel,
  spec: ResolvedSpec,
  clock: RunClock,
  requestVae: RequestVae = { vae: undefined, tiling: undefined },
): Promise<InputImages> {
  const { width, height } = spec;
  const vae = requestVae.vae ?? model.vae;
  const { tiling } = requestVae;
  if (!spec.initImage) throw new InvalidArgumentError("spec.init_image", "is required for this mode");
  if (!vae.encoder) {
    throw new InvalidArgumentError(vae.field, `${spec.mode} needs a vae_encoder, which "${vae.id}" lacks`);
  }
  const pixels = rgb8ToVaeInput(
    await decodeInputImage(spec.initImage, width, height, 3, "spec.init_image"),
    height,
    width,
  );
  const image = await encodeImage(vae, pixels, height, width, clock, tiling);
  const scalingFactor = vae.scalingFactor;
  if (spec.mode !== "inpaint") return { image, latentMask: undefined, maskedImage: undefined, scalingFactor };
  if (!spec.maskImage) throw new InvalidArgumentError("spec.mask_image", "is required for inpainting");
  const mask = binarizeMask(await decodeInputImage(spec.maskImage, width, height, 1, "spec.mask_image"));
  const latentMask = maskToLatentGrid(mask, height, width, height / 8, width / 8);
  let maskedImage: LatentDistribution | undefined;
  if (model.contract.unetInChannels === 9) {
    // diffusers: masked_image = init_image * (mask < 0.5)
    const plane = width * height;
    const masked = pixels.map((v, i) => ((mask[i % plane] as number) < 0.5 ? v : 0));
    maskedImage = await encodeImage(vae, masked, height, width, clock, tiling);
  }
  return { image, latentMask, maskedImage, scalingFactor };
}

/**
 * An image's initial latents, drawing from its generator in the order diffusers' SDXL txt2img, img2img and
 * inpaint pipelines do (`prepare_latents`, then `prepare_mask_latents`), so that stochastic samplers continue
 * from the same generator state. `firstTimestep` is the first one the schedule runs.
 */
export function initialLatents(
  model: LoadedModel,
  spec: ResolvedSpec,
  inputs: InputImages | undefined,
  scheduler: Scheduler,
  generator: Generator,
  firstTimestep: number,
): InitialLatents {
  const size = 4 * (spec.height / 8) * (spec.width / 8);
  const sigma = Math.fround(scheduler.initNoiseSigma);
  const scaling = inputs?.scalingFactor ?? model.dir.vaeScalingFactor;
  if (!inputs)
    return { latents: generator.randn(size).map((v) => v * sigma), blend: undefined, extraChannels: [] };
  if (spec.mode === "img2img") {
    const imageLatents = sampleLatents(inputs.image, generator, scaling);
    const noise = generator.randn(size);
    return {
      latents: scheduler.addNoise(imageLatents, noise, firstTimestep),
      blend: undefined,
      extraChannels: [],
    };
  }
  const nineChannels = model.contract.unetInChannels === 9;
  const strengthMax = spec.strength >= 1;
  // The image is encoded only where it is used: by the blend of a 4-channel UNet, or as the start below strength 1.
  const imageLatents =
    !nineChannels || !strengthMax ? sampleLatents(inputs.image, generator, scaling) : undefined;
  const noise = generator.randn(size);
  const latents =
    strengthMax || !imageLatents
      ? noise.map((v) => v * sigma)
      : scheduler.addNoise(imageLatents, noise, firstTimestep);
  const mask = inputs.latentMask as Float32Array;
  if (nineChannels) {
    const masked = sampleLatents(inputs.maskedImage as LatentDistribution, generator, scaling);
    return { latents, blend: undefined, extraChannels: [mask, masked] };
  }
  // diffusers encodes the masked image for 4-channel UNets too, and discards it: only its draw counts.
  if (inputs.image.logvar) generator.randn(size);
  return { latents, blend: { imageLatents: imageLatents as Float32Array, noise, mask }, extraChannels: [] };
}
