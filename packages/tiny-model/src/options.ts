/** Which pipeline the tiny model imitates. */
export type TinyModelKind = "sdxl" | "sdxl-refiner" | "sd15" | "sd2";

export interface TinyModelOptions {
  readonly kind: TinyModelKind;
  /** Seeds every weight (an unsigned 32-bit integer). */
  readonly seed: number;
  /** 4 for text-to-image, 9 for an inpainting UNet (latents ++ mask ++ masked-image latents). */
  readonly unetInChannels: 4 | 9;
  /** dtype of the UNet's `timestep`: float32 (optimum) or int64 (older diffusers exports). */
  readonly timestepType: "float32" | "int64";
  /** `vector`: timestep is [steps] (1 or batch); `scalar`: rank 0, as the newest optimum exports it. */
  readonly timestepShape: "vector" | "scalar";
  /** The UNet's float inputs and output: float32, or float16 as fp16 exports (`--fp16`) have them. */
  readonly unetPrecision: "float32" | "float16";
  /** dtype of the text encoders' `input_ids`: int32 (optimum up to 1.2x) or int64 (later optimum). */
  readonly inputIdsType: "int32" | "int64";
  /** The VAE encoder's output: mean ++ logvar (`latent_parameters`, 8 channels) or the mean (`latent_sample`). */
  readonly vaeEncoderOutput: "latent_sample" | "latent_parameters";
  /**
   * `parameters`: every weight keeps its PyTorch parameter name and layout. `exported`: as torch.onnx
   * exports with constant folding: a Linear run by MatMul has its weight transposed ([in, out]) under an
   * anonymous `onnx::MatMul_<n>` (a Linear on 2-D input becomes a Gemm with transB and keeps its names),
   * GroupNorm's scale and shift become anonymous [C, 1, 1] constants, and node names carry the module paths
   * (`/down_blocks.1/attentions.0/transformer_blocks.0/attn1/to_q/MatMul`). Same weights either way.
   */
  readonly naming: "parameters" | "exported";
  /** Weights in `model.onnx_data` beside each `model.onnx`, as optimum writes models over 2 GB. */
  readonly externalData: boolean;
  /** The UNet's resnets (and transformers) per down block; 2 as SDXL and SD 1.x have. */
  readonly layersPerBlock: 1 | 2;
  /**
   * The UNet takes ControlNet residuals as extra inputs (`down_block_<i>_additional_residual`, one per skip
   * connection, and `mid_block_additional_residual`), added where diffusers adds them, as a split export does.
   */
  readonly controlResiduals: boolean;
  /** Also a TAESD-layout preview decoder in `taesd_decoder/` (AutoencoderTiny's decoder I/O). */
  readonly taesd: boolean;
}

export const defaultTinyModelOptions: TinyModelOptions = Object.freeze({
  kind: "sdxl",
  seed: 42,
  unetInChannels: 4,
  timestepType: "float32",
  timestepShape: "vector",
  unetPrecision: "float32",
  inputIdsType: "int32",
  vaeEncoderOutput: "latent_parameters",
  naming: "parameters",
  externalData: false,
  layersPerBlock: 1,
  controlResiduals: false,
  taesd: false,
});

/** An option value out of range; `field` names the option. */
export class TinyModelOptionError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "TinyModelOptionError";
  }
}

const choices: { readonly [K in keyof TinyModelOptions]?: readonly TinyModelOptions[K][] } = {
  kind: ["sdxl", "sdxl-refiner", "sd15", "sd2"],
  unetInChannels: [4, 9],
  timestepType: ["float32", "int64"],
  timestepShape: ["vector", "scalar"],
  unetPrecision: ["float32", "float16"],
  inputIdsType: ["int32", "int64"],
  vaeEncoderOutput: ["latent_sample", "latent_parameters"],
  naming: ["parameters", "exported"],
  externalData: [false, true],
  layersPerBlock: [1, 2],
  controlResiduals: [false, true],
  taesd: [false, true],
};

/** Fills in defaults and validates every field, naming the first bad one. */
export function resolveTinyModelOptions(options: Partial<TinyModelOptions> = {}): TinyModelOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const merged: TinyModelOptions = { ...defaultTinyModelOptions, ...given };
  for (const key of Object.keys(merged) as (keyof TinyModelOptions)[]) {
    if (!(key in defaultTinyModelOptions)) throw new TinyModelOptionError(key, "unknown option");
    const allowed = choices[key] as readonly unknown[] | undefined;
    if (allowed !== undefined && !allowed.includes(merged[key])) {
      throw new TinyModelOptionError(
        key,
        `must be one of ${allowed.map((v) => JSON.stringify(v)).join(", ")}`,
      );
    }
  }
  checkSeed(merged.seed);
  return merged;
}

/** Throws a TinyModelOptionError unless `seed` is an unsigned 32-bit integer. */
export function checkSeed(seed: number): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new TinyModelOptionError("seed", "must be an integer in [0, 4294967295]");
  }
  return seed;
}

/** Options a manifest leaves out at their defaults, so the default model's manifest stays what it was. */
type StorageOptions = "naming" | "externalData" | "layersPerBlock" | "controlResiduals" | "taesd";
export type ManifestOptions = Omit<TinyModelOptions, StorageOptions> &
  Partial<Pick<TinyModelOptions, StorageOptions>>;

/** The same options in a fixed key order, the storage options only where they are not the default. */
export function canonicalOptions(o: TinyModelOptions): ManifestOptions {
  const d = defaultTinyModelOptions;
  return {
    kind: o.kind,
    seed: o.seed,
    unetInChannels: o.unetInChannels,
    timestepType: o.timestepType,
    timestepShape: o.timestepShape,
    unetPrecision: o.unetPrecision,
    inputIdsType: o.inputIdsType,
    vaeEncoderOutput: o.vaeEncoderOutput,
    ...(o.naming !== d.naming && { naming: o.naming }),
    ...(o.externalData !== d.externalData && { externalData: o.externalData }),
    ...(o.layersPerBlock !== d.layersPerBlock && { layersPerBlock: o.layersPerBlock }),
    ...(o.controlResiduals !== d.controlResiduals && { controlResiduals: o.controlResiduals }),
    ...(o.taesd !== d.taesd && { taesd: o.taesd }),
  };
}
