import { ModelContractError, type OnnxSession, type TensorSpec } from "@dmesh/onnx";

/** The latent channels of every SD/SDXL VAE. */
export const LATENT_CHANNELS = 4;

const FLOATS = ["float32", "float16"];

/**
 * A VAE as the pipeline runs it: a model suite's own (`vae_decoder/`, `vae_encoder/`), or a separate VAE suite
 * named by `ModelSuite.vae`.
 */
export interface Vae {
  /** The model, or the VAE suite's name (what spans and errors name). */
  readonly id: string;
  /** The request field that chose it: `spec.models.base` for a suite's own, `spec.models.vae` otherwise. */
  readonly field: string;
  readonly decoder: OnnxSession;
  readonly encoder: OnnxSession | undefined;
  readonly decoderOutput: string;
  readonly encoderOutput: string | undefined;
  /** `latents / scaling_factor` goes into the decoder; the encoder's sample times it comes out. */
  readonly scalingFactor: number;
  /** diffusers' `tile_sample_min_size`: the VAE config's `sample_size`, the tile a tiled run uses by default. */
  readonly sampleSize: number;
}

/** The output names a VAE's decoder and encoder are read from, and their channel checks. */
export interface VaeContract {
  readonly decoderOutput: string;
  readonly encoderOutput: string | undefined;
  /** The channels `latent_sample` takes, when the export declares them. */
  readonly latentChannels: number | undefined;
}

/**
 * Checks a VAE's decoder (and encoder, when present) against optimum's VaeDecoder/VaeEncoder I/O: the decoder
 * takes `latent_sample` of 4 channels and returns `sample`; the encoder takes `sample` and returns the latent
 * distribution's parameters (or a sample). A mismatch is a ModelContractError naming `model`.
 */
export function vaeContract(
  model: string,
  decoder: OnnxSession,
  encoder: OnnxSession | undefined,
): VaeContract {
  const latentSample = decoder.requireInput("latent_sample", FLOATS);
  const latentChannels = dim(latentSample, 1);
  if (latentChannels !== undefined && latentChannels !== LATENT_CHANNELS) {
    throw new ModelContractError(
      model,
      `the channels of vae_decoder input "latent_sample" are ${latentChannels} but the UNet's latent channels are ${LATENT_CHANNELS}`,
    );
  }
  const decoderOutput = decoder.outputs.has("sample") ? "sample" : [...decoder.outputs.keys()][0];
  if (!decoderOutput) throw new ModelContractError(model, "vae_decoder has no outputs");
  let encoderOutput: string | undefined;
  if (encoder) {
    encoder.requireInput("sample", FLOATS);
    encoderOutput = ["latent_parameters", "latent_sample", "latent_dist"].find((n) => encoder.outputs.has(n));
    if (!encoderOutput) {
      throw new ModelContractError(
        model,
        `vae_encoder returns ${[...encoder.outputs.keys()].join(", ")}; expected latent_parameters or latent_sample`,
      );
    }
    const channels = dim(encoder.outputs.get(encoderOutput), 1);
    if (channels !== undefined && channels !== LATENT_CHANNELS && channels !== 2 * LATENT_CHANNELS) {
      throw new ModelContractError(
        model,
        `vae_encoder output "${encoderOutput}" has ${channels} channels; expected ${LATENT_CHANNELS} or ${2 * LATENT_CHANNELS}`,
      );
    }
  }
  return { decoderOutput, encoderOutput, latentChannels };
}

/** A declared dimension, or undefined when the export left it symbolic (dynamic). */
function dim(spec: TensorSpec | undefined, axis: number): number | undefined {
  const d = spec?.shape[axis];
  return typeof d === "number" && d > 0 ? d : undefined;
}
