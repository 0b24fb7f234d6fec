import { parseArgs } from "node:util";
import type { TinyModelOptions } from "./options.js";
import { CONTROLNET_ARTIFACT } from "./write-tiny-controlnet.js";
import { DIFFUSION_ARTIFACT } from "./write-tiny-model.js";
import { SAFETY_CLASSIFIER_ARTIFACT } from "./write-tiny-safety-classifier.js";
import { UPSCALER_ARTIFACT } from "./write-tiny-upscaler.js";
import { VAE_ARTIFACT } from "./write-tiny-vae.js";

export const USAGE = `usage: dmesh-tiny-model <dir> [options]

Writes a tiny diffusion model (real ONNX graphs, seeded weights) in the layout of an optimum ONNX export.
Skips a directory that already holds the same complete model.

  --kind sdxl|sdxl-refiner|sd15|sd2    pipeline to imitate (default sdxl)
  --seed N                             weight seed, 0..4294967295 (default 42)
  --unet-in-channels 4|9               9 makes an inpainting UNet (default 4)
  --timestep-type float32|int64        dtype of the UNet's timestep (default float32)
  --timestep-shape vector|scalar       timestep as [steps] or rank 0 (default vector)
  --input-ids-type int32|int64         dtype of input_ids (default int32)
  --vae-encoder-output latent_parameters|latent_sample   (default latent_parameters)
  --naming parameters|exported         weight names: PyTorch's, or as torch.onnx exports them (default parameters)
  --external-data                      weights in model.onnx_data beside each model.onnx
  --layers-per-block 1|2               UNet resnets per down block (default 1; SDXL has 2)
  --control-residuals                  the UNet takes ControlNet residuals (down_block_<i>_additional_residual, ...)
  --taesd                              also a TAESD-layout preview decoder (taesd_decoder/)
  --artifact diffusion-pipeline|upscaler|safety-classifier|controlnet|vae   what to write (default
                                       diffusion-pipeline); controlnet: a ControlNet for the tiny model of
                                       --kind sdxl|sd15|sd2 (default seed 5) and --layers-per-block, into
                                       <dir>/model.onnx; vae: a separate VAE suite for ModelSuite.vae,
                                       --kind sdxl|sd15
  --scale 2|4                          upscaler factor (default 2)
  --force                              rewrite even if complete, or write into a foreign non-empty dir
  --help`;

/** A command line that cannot be understood; the message says what is wrong. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export type Artifact =
  | typeof DIFFUSION_ARTIFACT
  | typeof UPSCALER_ARTIFACT
  | typeof SAFETY_CLASSIFIER_ARTIFACT
  | typeof CONTROLNET_ARTIFACT
  | typeof VAE_ARTIFACT;

export interface CliRequest {
  readonly dir: string;
  readonly artifact: Artifact;
  readonly force: boolean;
  /** Raw option values; the writers validate them. */
  readonly diffusion: Partial<TinyModelOptions>;
  readonly scale?: number;
  readonly help: boolean;
}

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value))
    throw new UsageError(`--${flag} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

export function parseCliArgs(argv: readonly string[]): CliRequest {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  const artifact = (values.artifact ?? DIFFUSION_ARTIFACT) as Artifact;
  const artifacts = [
    DIFFUSION_ARTIFACT,
    UPSCALER_ARTIFACT,
    SAFETY_CLASSIFIER_ARTIFACT,
    CONTROLNET_ARTIFACT,
    VAE_ARTIFACT,
  ];
  if (!artifacts.includes(artifact)) {
    throw new UsageError(`--artifact must be one of ${artifacts.join(", ")}`);
  }
  if (values.help) return { dir: "", artifact, force: false, diffusion: {}, help: true };
  if (positionals.length !== 1) throw new UsageError("expected exactly one <dir>");
  const scale = integer("scale", values.scale);
  return {
    dir: positionals[0] as string,
    artifact,
    force: values.force ?? false,
    help: false,
    ...(scale !== undefined && { scale }),
    diffusion: {
      kind: values.kind as TinyModelOptions["kind"] | undefined,
      seed: integer("seed", values.seed),
      unetInChannels: integer("unet-in-channels", values["unet-in-channels"]) as
        | TinyModelOptions["unetInChannels"]
        | undefined,
      timestepType: values["timestep-type"] as TinyModelOptions["timestepType"] | undefined,
      timestepShape: values["timestep-shape"] as TinyModelOptions["timestepShape"] | undefined,
      inputIdsType: values["input-ids-type"] as TinyModelOptions["inputIdsType"] | undefined,
      vaeEncoderOutput: values["vae-encoder-output"] as TinyModelOptions["vaeEncoderOutput"] | undefined,
      naming: values.naming as TinyModelOptions["naming"] | undefined,
      externalData: values["external-data"],
      taesd: values.taesd,
      layersPerBlock: integer("layers-per-block", values["layers-per-block"]) as
        | TinyModelOptions["layersPerBlock"]
        | undefined,
      controlResiduals: values["control-residuals"],
    },
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      kind: { type: "string" },
      seed: { type: "string" },
      "unet-in-channels": { type: "string" },
      "timestep-type": { type: "string" },
      "timestep-shape": { type: "string" },
      "input-ids-type": { type: "string" },
      "vae-encoder-output": { type: "string" },
      naming: { type: "string" },
      "external-data": { type: "boolean" },
      taesd: { type: "boolean" },
      "layers-per-block": { type: "string" },
      "control-residuals": { type: "boolean" },
      artifact: { type: "string" },
      scale: { type: "string" },
      force: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}
