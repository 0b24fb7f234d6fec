import { ModelContractError, type OnnxSession } from "@dmesh/onnx";
import type { ModelDirectory } from "../models/pipeline-directory.js";
import { LATENT_CHANNELS } from "./vae.js";

/**
 * A TAESD-layout decoder (`<model>/taesd_decoder/model.onnx`, the I/O of diffusers' AutoencoderTiny decoder):
 * `latent_sample` [N, 4, h, w] of the denoising latents divided by its scaling_factor (1 for TAESD) in,
 * `sample` [N, 3, 8h, 8w] in [-1, 1] out. Live previews come from it when a model has one.
 */
export interface PreviewDecoder {
  readonly session: OnnxSession;
  readonly output: string;
  readonly scalingFactor: number;
}

export function previewDecoderContract(
  dir: Pick<ModelDirectory, "id" | "taesdScalingFactor">,
  session: OnnxSession,
): PreviewDecoder {
  const input = session.requireInput("latent_sample", ["float32", "float16"]);
  const channels = input.shape[1];
  if (typeof channels === "number" && channels > 0 && channels !== LATENT_CHANNELS) {
    throw new ModelContractError(
      dir.id,
      `taesd_decoder input "latent_sample" has ${channels} channels; the UNet's latents have ${LATENT_CHANNELS}`,
    );
  }
  const output = session.outputs.has("sample") ? "sample" : [...session.outputs.keys()][0];
  if (!output) throw new ModelContractError(dir.id, "taesd_decoder has no outputs");
  return { session, output, scalingFactor: dir.taesdScalingFactor };
}
