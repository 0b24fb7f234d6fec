import { join } from "node:path";
import {
  ModelContractError,
  OnnxSession,
  type ProviderFallback,
  type SessionSettings,
  type TensorSpec,
} from "@dmesh/onnx";
import { type ResidualLayout, unetResidualLayout } from "../control/residual-layout.js";
import { type ClipTokenizer, type EmbeddingLookup, loadClipTokenizer } from "../tokenizer/index.js";
import { type PreviewDecoder, previewDecoderContract } from "../vae/preview-decoder.js";
import { LATENT_CHANNELS, type Vae, vaeContract } from "../vae/vae.js";
import { type ComponentName, isSdxlFamily, type ModelDirectory } from "./pipeline-directory.js";

const FLOATS = ["float32", "float16"];

/** A text encoder and the output names the pipeline reads from it. */
export interface TextEncoder {
  readonly component: OnnxSession;
  readonly tokenizer: ClipTokenizer;
  /** `hidden_states.0` (embeddings) … `hidden_states.N` (last layer), in order. */
  readonly hiddenStates: string[];
  /** `text_embeds` (with projection) or `pooler_output`. */
  readonly pooled: string | undefined;
  readonly lastHiddenState: string | undefined;
  /** Width of the hidden states, when the export declares it. */
  readonly hiddenDim: number | undefined;
}

/** How this export's UNet and VAE want to be fed: the known variants, resolved once at load. */
export interface ModelContract {
  readonly unetOutput: string;
  readonly timestepType: string;
  readonly timestepRank: number;
  /** The timestep is a vector of symbolic length: rows of one batch may be at different timesteps. */
  readonly timestepPerRow: boolean;
  readonly unetInChannels: number;
  /** The UNet's batch dimension when the export fixed it (then CFG rows run in several calls); undefined = dynamic. */
  readonly unetBatch: number | undefined;
  readonly timeIdsLength: number;
  readonly usesTextEmbeds: boolean;
  /** Sequence length the UNet accepts, or undefined when dynamic (then long prompts may use several chunks). */
  readonly maxTokens: number | undefined;
  readonly vaeDecoderOutput: string;
  readonly vaeEncoderOutput: string | undefined;
  /** The UNet's ControlNet residual inputs (a split export's), or undefined when it takes none. */
  readonly controlResiduals: ResidualLayout | undefined;
}

export interface LoadedModel {
  readonly dir: ModelDirectory;
  readonly textEncoders: TextEncoder[];
  readonly unet: OnnxSession;
  readonly vaeDecoder: OnnxSession;
  readonly vaeEncoder: OnnxSession | undefined;
  /** The suite's own VAE, as the pipeline runs it (a request's `models.vae` may name another). */
  readonly vae: Vae;
  /** A TAESD-layout decoder for live previews (`taesd_decoder/`), when the suite has one. */
  readonly previewDecoder: PreviewDecoder | undefined;
  readonly contract: ModelContract;
  readonly providers: string[];
  /** Configured providers this model could not use, and why (logged once by the registry). */
  readonly fallbacks: readonly ProviderFallback[];
  /** Textual-inversion embeddings its text encoders hold as extra token ids (an adapted model's). */
  readonly embeddings?: EmbeddingLookup;
  release(): Promise<void>;
}

export { LATENT_CHANNELS };

/** Opens one component's session (a patched one, for an adapter set); `OnnxSession.open` by default. */
export type OpenComponent = (
  name: ComponentName,
  file: string,
  settings: SessionSettings,
) => Promise<OnnxSession>;

/**
 * Creates every session of a model directory and checks each sub-model's I/O contract, and that their
 * dimensions agree with each other, before first use. The first component settles the provider chain, so
 * a provider that cannot load is tried once per model, not once per component.
 */
export async function loadModel(
  dir: ModelDirectory,
  settings: SessionSettings,
  open: OpenComponent = (name, file, chain) => OnnxSession.open(dir.id, name, file, chain),
): Promise<LoadedModel> {
  const loaded: OnnxSession[] = [];
  let chain = settings;
  const load = async (name: ComponentName) => {
    const file = dir.components[name];
    if (!file) return undefined;
    const component = await open(name, file, chain);
    if (loaded.length === 0) chain = { ...settings, executionProviders: component.providers };
    loaded.push(component);
    return component;
  };
  try {
    const textEncoders: TextEncoder[] = [];
    for (const [name, tokenizerDir] of [
      ["text_encoder", "tokenizer"],
      ["text_encoder_2", "tokenizer_2"],
    ] as const) {
      const component = await load(name);
      if (!component) continue;
      const tokenizer = await loadClipTokenizer(join(dir.path, tokenizerDir)).catch((err: Error) => {
        throw new ModelContractError(dir.id, err.message);
      });
      textEncoders.push(textEncoderContract(dir.id, component, tokenizer));
    }
    const unet = await load("unet");
    const vaeDecoder = await load("vae_decoder");
    const vaeEncoder = await load("vae_encoder");
    if (!unet || !vaeDecoder) throw new ModelContractError(dir.id, "unet and vae_decoder are required");
    const contract = modelContract(dir, textEncoders, unet, vaeDecoder, vaeEncoder);
    const taesd = await load("taesd_decoder");
    const previewDecoder = taesd && previewDecoderContract(dir, taesd);
    return {
      dir,
      textEncoders,
      unet,
      vaeDecoder,
      vaeEncoder,
      vae: {
        id: dir.id,
        field: "spec.models.base",
        decoder: vaeDecoder,
        encoder: vaeEncoder,
        decoderOutput: contract.vaeDecoderOutput,
        encoderOutput: contract.vaeEncoderOutput,
        scalingFactor: dir.vaeScalingFactor,
        sampleSize: dir.vaeSampleSize,
      },
      previewDecoder,
      contract,
      providers: unet.providers,
      fallbacks: loaded.flatMap((c) => c.fallbacks),
      release: async () => {
        await Promise.all(loaded.map((c) => c.release()));
      },
    };
  } catch (err) {
    await Promise.all(loaded.map((c) => c.release().catch(() => {})));
    throw err;
  }
}

function textEncoderContract(model: string, component: OnnxSession, tokenizer: ClipTokenizer): TextEncoder {
  component.requireInput("input_ids", ["int32", "int64"]);
  const hiddenStates = [...component.outputs.keys()]
    .filter((n) => /^hidden_states\.\d+$/.test(n))
    .sort((a, b) => Number(a.split(".")[1]) - Number(b.split(".")[1]));
  const pooled = ["text_embeds", "pooler_output"].find((n) => component.outputs.has(n));
  const lastHiddenState = component.outputs.has("last_hidden_state") ? "last_hidden_state" : undefined;
  if (hiddenStates.length < 2 && !lastHiddenState) {
    throw new ModelContractError(
      model,
      `${component.name} returns neither hidden_states.* nor last_hidden_state (it returns ${[...component.outputs.keys()].join(", ")})`,
    );
  }
  const widthOf = (name: string | undefined) => dim(name ? component.outputs.get(name) : undefined, 2);
  return {
    component,
    tokenizer,
    hiddenStates,
    pooled,
    lastHiddenState,
    hiddenDim: widthOf(hiddenStates[0] ?? lastHiddenState),
  };
}

function modelContract(
  dir: ModelDirectory,
  textEncoders: TextEncoder[],
  unet: OnnxSession,
  vaeDecoder: OnnxSession,
  vaeEncoder: OnnxSession | undefined,
): ModelContract {
  const sample = unet.requireInput("sample", FLOATS);
  const timestep = unet.requireInput("timestep", ["float32", "float16", "int64", "int32"]);
  const hidden = unet.requireInput("encoder_hidden_states", FLOATS);
  const mismatch = (what: string, found: number | undefined, expected: number | undefined, from: string) => {
    if (found !== undefined && expected !== undefined && found !== expected) {
      throw new ModelContractError(dir.id, `${what} is ${found} but ${from} is ${expected}`);
    }
  };
  const widths = textEncoders.map((e) => e.hiddenDim);
  const textWidth = widths.every((w) => w !== undefined)
    ? widths.reduce<number>((n, w) => n + (w ?? 0), 0)
    : undefined;
  mismatch(
    'the width of unet input "encoder_hidden_states"',
    dim(hidden, 2),
    textWidth,
    `the text encoders' hidden state width (${textEncoders.map((e) => `${e.component.name} ${e.hiddenDim}`).join(" + ")})`,
  );
  const sdxl = isSdxlFamily(dir.family);
  let timeIdsLength = 0;
  if (sdxl) {
    const textEmbeds = unet.requireInput("text_embeds", FLOATS);
    const projection = textEncoders.find((e) => e.pooled === "text_embeds") ?? textEncoders.at(-1);
    const pooled = projection?.pooled
      ? dim(projection.component.outputs.get(projection.pooled), 1)
      : undefined;
    mismatch(
      'the width of unet input "text_embeds"',
      dim(textEmbeds, 1),
      pooled,
      `${projection?.component.name} output "${projection?.pooled}"`,
    );
    const expected = dir.requiresAestheticsScore ? 5 : 6;
    const timeIds = unet.requireInput("time_ids", FLOATS);
    mismatch(
      'the length of unet input "time_ids"',
      dim(timeIds, 1),
      expected,
      dir.requiresAestheticsScore
        ? "what a refiner takes (sizes, crop, aesthetic score)"
        : "what SDXL takes (sizes, crop, target size)",
    );
    timeIdsLength = expected;
  }
  const unetInChannels = dim(sample, 1) ?? LATENT_CHANNELS;
  if (unetInChannels !== LATENT_CHANNELS && unetInChannels !== 9) {
    throw new ModelContractError(
      dir.id,
      `unet input "sample" has ${unetInChannels} channels; expected 4, or 9 for inpainting`,
    );
  }
  const unetOutput = unet.outputs.has("out_sample") ? "out_sample" : [...unet.outputs.keys()][0];
  if (!unetOutput) throw new ModelContractError(dir.id, "unet has no outputs");
  mismatch(
    `the channels of unet output "${unetOutput}"`,
    dim(unet.outputs.get(unetOutput), 1),
    LATENT_CHANNELS,
    "the VAE's latent channels",
  );
  const { decoderOutput: vaeDecoderOutput, encoderOutput: vaeEncoderOutput } = vaeContract(
    dir.id,
    vaeDecoder,
    vaeEncoder,
  );
  return {
    unetOutput,
    timestepType: timestep.type,
    timestepRank: timestep.shape.length,
    timestepPerRow: timestep.shape.length === 1 && dim(timestep, 0) === undefined,
    unetInChannels,
    unetBatch: dim(sample, 0),
    timeIdsLength,
    usesTextEmbeds: sdxl,
    maxTokens: dim(hidden, 1),
    vaeDecoderOutput,
    vaeEncoderOutput,
    controlResiduals: unetResidualLayout(dir, unet),
  };
}

/** A declared dimension, or undefined when the export left it symbolic (dynamic). */
function dim(spec: TensorSpec | undefined, axis: number): number | undefined {
  const d = spec?.shape[axis];
  return typeof d === "number" && d > 0 ? d : undefined;
}
