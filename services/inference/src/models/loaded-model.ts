import { join } from "node:path";
import { type ClipTokenizer, loadClipTokenizer } from "../tokenizer/index.js";
import type { ModelDirectory } from "./model-directory.js";
import { ModelContractError } from "./model-errors.js";
import { OnnxComponent, type SessionSettings } from "./onnx-component.js";

const FLOATS = ["float32", "float16"];

/** A text encoder and the output names the pipeline reads from it. */
export interface TextEncoder {
  readonly component: OnnxComponent;
  readonly tokenizer: ClipTokenizer;
  /** `hidden_states.0` (embeddings) … `hidden_states.N` (last layer), in order. */
  readonly hiddenStates: string[];
  /** `text_embeds` (with projection) or `pooler_output`. */
  readonly pooled: string | undefined;
  readonly lastHiddenState: string | undefined;
}

/** How this export's UNet and VAE want to be fed: the known variants, resolved once at load. */
export interface ModelContract {
  readonly unetOutput: string;
  readonly timestepType: string;
  readonly timestepRank: number;
  readonly unetInChannels: number;
  readonly timeIdsLength: number;
  readonly usesTextEmbeds: boolean;
  /** Sequence length the UNet accepts, or undefined when dynamic (then long prompts may use several chunks). */
  readonly maxTokens: number | undefined;
  readonly vaeDecoderOutput: string;
  readonly vaeEncoderOutput: string | undefined;
}

export interface LoadedModel {
  readonly dir: ModelDirectory;
  readonly textEncoders: TextEncoder[];
  readonly unet: OnnxComponent;
  readonly vaeDecoder: OnnxComponent;
  readonly vaeEncoder: OnnxComponent | undefined;
  readonly contract: ModelContract;
  readonly providers: string[];
  release(): Promise<void>;
}

/** Creates every session of a model directory and checks each sub-model's I/O contract before first use. */
export async function loadModel(dir: ModelDirectory, settings: SessionSettings): Promise<LoadedModel> {
  const loaded: OnnxComponent[] = [];
  const load = async (name: keyof ModelDirectory["components"]) => {
    const file = dir.components[name];
    if (!file) return undefined;
    const component = await OnnxComponent.load(dir.id, name, file, settings);
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
    const contract = modelContract(dir, unet, vaeDecoder, vaeEncoder);
    const providers = unet.providers;
    return {
      dir,
      textEncoders,
      unet,
      vaeDecoder,
      vaeEncoder,
      contract,
      providers,
      release: async () => {
        await Promise.all(loaded.map((c) => c.release()));
      },
    };
  } catch (err) {
    await Promise.all(loaded.map((c) => c.release().catch(() => {})));
    throw err;
  }
}

function textEncoderContract(model: string, component: OnnxComponent, tokenizer: ClipTokenizer): TextEncoder {
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
  return { component, tokenizer, hiddenStates, pooled, lastHiddenState };
}

function modelContract(
  dir: ModelDirectory,
  unet: OnnxComponent,
  vaeDecoder: OnnxComponent,
  vaeEncoder: OnnxComponent | undefined,
): ModelContract {
  const sample = unet.requireInput("sample", FLOATS);
  const timestep = unet.requireInput("timestep", ["float32", "float16", "int64", "int32"]);
  const hidden = unet.requireInput("encoder_hidden_states", FLOATS);
  const sdxl = dir.family === "sdxl" || dir.family === "sdxl-refiner";
  let timeIdsLength = 0;
  if (sdxl) {
    unet.requireInput("text_embeds", FLOATS);
    const timeIds = unet.requireInput("time_ids", FLOATS);
    const declared = timeIds.shape[1];
    timeIdsLength = typeof declared === "number" ? declared : dir.family === "sdxl-refiner" ? 5 : 6;
  }
  const channels = sample.shape[1];
  const unetInChannels = typeof channels === "number" ? channels : 4;
  if (unetInChannels !== 4 && unetInChannels !== 9) {
    throw new ModelContractError(dir.id, `unet input "sample" has ${unetInChannels} channels; expected 4, or 9 for inpainting`);
  }
  const unetOutput = unet.outputs.has("out_sample") ? "out_sample" : [...unet.outputs.keys()][0];
  if (!unetOutput) throw new ModelContractError(dir.id, "unet has no outputs");
  vaeDecoder.requireInput("latent_sample", FLOATS);
  const vaeDecoderOutput = vaeDecoder.outputs.has("sample") ? "sample" : [...vaeDecoder.outputs.keys()][0];
  if (!vaeDecoderOutput) throw new ModelContractError(dir.id, "vae_decoder has no outputs");
  let vaeEncoderOutput: string | undefined;
  if (vaeEncoder) {
    vaeEncoder.requireInput("sample", FLOATS);
    vaeEncoderOutput = ["latent_parameters", "latent_sample", "latent_dist"].find((n) => vaeEncoder.outputs.has(n));
    if (!vaeEncoderOutput) {
      throw new ModelContractError(
        dir.id,
        `vae_encoder returns ${[...vaeEncoder.outputs.keys()].join(", ")}; expected latent_parameters or latent_sample`,
      );
    }
  }
  const tokens = hidden.shape[1];
  return {
    unetOutput,
    timestepType: timestep.type,
    timestepRank: timestep.shape.length,
    unetInChannels,
    timeIdsLength,
    usesTextEmbeds: sdxl,
    maxTokens: typeof tokens === "number" ? tokens : undefined,
    vaeDecoderOutput,
    vaeEncoderOutput,
  };
}
