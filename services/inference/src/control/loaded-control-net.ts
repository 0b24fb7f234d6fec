import { stat } from "node:fs/promises";
import { ModelContractError, OnnxSession, type SessionSettings, type TensorSpec } from "@dmesh/onnx";
import { a1111ModelHash } from "../adapters/adapter-hash.js";
import { type ResidualSlot, residualChannels, residualNames } from "./residual-layout.js";

const FLOATS = ["float32", "float16"];

/** How a ControlNet export wants to be fed and what it returns, read once at load. */
export interface ControlNetContract {
  /** Residual outputs in diffusers' order, with their channels where declared. */
  readonly down: readonly ResidualSlot[];
  readonly mid: ResidualSlot;
  /** `conditioning_scale` is rank 0 or [1]. */
  readonly scaleDims: readonly number[];
  readonly timestepRank: number;
  /** Channels of its `sample`: 4 (a ControlNet beside an inpainting UNet still sees the latents only). */
  readonly sampleChannels: number;
  /** Takes SDXL's `text_embeds` and `time_ids`. */
  readonly usesTextEmbeds: boolean;
  readonly hiddenWidth: number | undefined;
  readonly timeIdsLength: number | undefined;
}

export interface LoadedControlNet {
  readonly name: string;
  readonly session: OnnxSession;
  readonly contract: ControlNetContract;
  /** AUTOMATIC1111's short model hash of model.onnx, as the ControlNet extension's infotext shows it. */
  readonly hash: string;
  readonly fileBytes: number;
  release(): Promise<void>;
}

/** The id ControlNet errors name: the directory under the ControlNet folder. */
export const controlNetId = (name: string) => `controlnet/${name}`;

/** Opens a ControlNet's model.onnx and checks its inputs and outputs before first use. */
export async function loadControlNet(
  name: string,
  file: string,
  settings: SessionSettings,
): Promise<LoadedControlNet> {
  const id = controlNetId(name);
  const session = await OnnxSession.open(id, "controlnet", file, settings);
  try {
    const contract = controlNetContract(id, session);
    const [hash, { size }] = await Promise.all([a1111ModelHash(file), stat(file)]);
    return { name, session, contract, hash, fileBytes: size, release: () => session.release() };
  } catch (err) {
    await session.release().catch(() => {});
    throw err;
  }
}

function controlNetContract(id: string, session: OnnxSession): ControlNetContract {
  const sample = session.requireInput("sample", FLOATS);
  const timestep = session.requireInput("timestep", ["float32", "float16", "int64", "int32"]);
  const hidden = session.requireInput("encoder_hidden_states", FLOATS);
  const cond = session.requireInput("controlnet_cond", FLOATS);
  const scale = session.requireInput("conditioning_scale", FLOATS);
  const condChannels = dim(cond, 1);
  if (cond.shape.length !== 4 || (condChannels !== undefined && condChannels !== 3)) {
    throw new ModelContractError(
      id,
      `controlnet input "controlnet_cond" is [${cond.shape.join(", ")}]; expected [batch, 3, height, width]`,
    );
  }
  if (
    scale.shape.length > 1 ||
    (scale.shape.length === 1 && dim(scale, 0) !== undefined && dim(scale, 0) !== 1)
  ) {
    throw new ModelContractError(
      id,
      `controlnet input "conditioning_scale" is [${scale.shape.join(", ")}]; expected a scalar or [1]`,
    );
  }
  const textEmbeds = session.input("text_embeds");
  const timeIds = session.input("time_ids");
  if ((textEmbeds === undefined) !== (timeIds === undefined)) {
    throw new ModelContractError(id, "controlnet takes one of text_embeds and time_ids without the other");
  }
  if (textEmbeds) session.requireInput("text_embeds", FLOATS);
  if (timeIds) session.requireInput("time_ids", FLOATS);
  const names = residualNames(session.outputs.keys(), id, "controlnet");
  if (!names) {
    throw new ModelContractError(
      id,
      `controlnet returns no residuals (down_block_<i>_additional_residual, mid_block_additional_residual); it returns ${[...session.outputs.keys()].join(", ")}`,
    );
  }
  const slot = (name: string): ResidualSlot => ({
    name,
    channels: residualChannels(session.outputs.get(name) as TensorSpec, id, "controlnet output"),
  });
  return {
    down: names.down.map(slot),
    mid: slot(names.mid),
    scaleDims: scale.shape.length === 0 ? [] : [1],
    timestepRank: timestep.shape.length,
    sampleChannels: dim(sample, 1) ?? 4,
    usesTextEmbeds: textEmbeds !== undefined,
    hiddenWidth: dim(hidden, 2),
    timeIdsLength: timeIds ? dim(timeIds, 1) : undefined,
  };
}

function dim(spec: TensorSpec | undefined, axis: number): number | undefined {
  const d = spec?.shape[axis];
  return typeof d === "number" && d > 0 ? d : undefined;
}
