import { join } from "node:path";
import { ModelContractError, type OnnxSession, optionalModelJson, type TensorSpec } from "@dmesh/onnx";

/** One ControlNet residual: a UNet input and the ControlNet output of the same name. */
export interface ResidualSlot {
  readonly name: string;
  /** Its channels, when the export declares them. */
  readonly channels: number | undefined;
}

/** The residuals of a split export in diffusers' order: one per skip connection, then the mid block's. */
export interface ResidualNames {
  readonly down: readonly string[];
  readonly mid: string;
}

/** Where a UNet takes ControlNet residuals, and at which size each one is (for the zeros fed without one). */
export interface ResidualLayout {
  readonly down: readonly (ResidualSlot & { readonly level: number })[];
  readonly mid: ResidualSlot & { readonly level: number };
}

// The two namings split exports use: `down_block_3_additional_residual` (ONNX SDXL pipelines) and
// `down_block_additional_residual.3` (torch.onnx's names for a tuple argument).
const DOWN_NAMES = [/^down_block_(\d+)_additional_residual$/, /^down_block_additional_residual[._](\d+)$/];
const MID_NAME = /^mid_block_additional_residual(?:[._]0)?$/;

/**
 * The residual tensors among `names` (a UNet's inputs or a ControlNet's outputs), or undefined when there are
 * none. Indices must run 0..n-1 once each, and a mid residual must be there: anything else is a
 * ModelContractError naming `model` and `component`.
 */
export function residualNames(
  names: Iterable<string>,
  model: string,
  component: string,
): ResidualNames | undefined {
  const down = new Map<number, string>();
  let mid: string | undefined;
  for (const name of names) {
    if (MID_NAME.test(name)) {
      if (mid !== undefined) throw new ModelContractError(model, `${component} has both ${mid} and ${name}`);
      mid = name;
      continue;
    }
    const match = DOWN_NAMES.map((re) => re.exec(name)).find((m) => m !== null);
    if (!match) continue;
    const index = Number(match[1]);
    const other = down.get(index);
    if (other !== undefined)
      throw new ModelContractError(model, `${component} has both ${other} and ${name}`);
    down.set(index, name);
  }
  if (down.size === 0 && mid === undefined) return undefined;
  const ordered: string[] = [];
  for (let i = 0; i < down.size; i++) {
    const name = down.get(i);
    if (name === undefined) {
      throw new ModelContractError(
        model,
        `${component}'s down-block residuals skip index ${i} (it has ${[...down.values()].join(", ")})`,
      );
    }
    ordered.push(name);
  }
  if (mid === undefined || ordered.length === 0) {
    throw new ModelContractError(
      model,
      `${component} has ${ordered.length} down-block residual(s) and ${mid === undefined ? "no" : "a"} mid_block_additional_residual; a ControlNet split export has both`,
    );
  }
  return { down: ordered, mid };
}

/** A residual tensor's channels, checking that it is a float [batch, C, h, w]. */
export function residualChannels(spec: TensorSpec, model: string, component: string): number | undefined {
  if (spec.type !== "float32" && spec.type !== "float16") {
    throw new ModelContractError(
      model,
      `${component} "${spec.name}" is ${spec.type}; expected float32 or float16`,
    );
  }
  if (spec.shape.length !== 4) {
    throw new ModelContractError(
      model,
      `${component} "${spec.name}" has rank ${spec.shape.length}; expected 4 ([batch, channels, height, width])`,
    );
  }
  const c = spec.shape[1];
  return typeof c === "number" && c > 0 ? c : undefined;
}

/**
 * The ControlNet residual inputs of a model's UNet, or undefined when it takes none. Their sizes follow the
 * UNet's blocks (unet/config.json's `block_out_channels` and `layers_per_block`, as diffusers lays out
 * `down_block_res_samples`): conv_in's output, each level's layers, each level's downsampler but the last's;
 * the mid block at the lowest level. The count and every declared channel count must agree with that.
 */
export function unetResidualLayout(
  model: { readonly id: string; readonly path: string },
  unet: OnnxSession,
): ResidualLayout | undefined {
  const names = residualNames(unet.inputs.keys(), model.id, "unet");
  if (!names) return undefined;
  const config = optionalModelJson(join(model.path, "unet", "config.json"));
  const blocks = config.block_out_channels;
  const layers = Number(config.layers_per_block);
  if (
    !Array.isArray(blocks) ||
    blocks.length === 0 ||
    !blocks.every((c) => Number.isInteger(c) && c > 0) ||
    !(Number.isInteger(layers) && layers > 0)
  ) {
    throw new ModelContractError(
      model.id,
      "unet takes ControlNet residuals, but unet/config.json gives no block_out_channels and layers_per_block to size them",
    );
  }
  const channels = blocks as number[];
  const expected: { channels: number; level: number }[] = [{ channels: channels[0] as number, level: 0 }];
  channels.forEach((c, level) => {
    for (let j = 0; j < layers; j++) expected.push({ channels: c, level });
    if (level < channels.length - 1) expected.push({ channels: c, level: level + 1 });
  });
  if (expected.length !== names.down.length) {
    throw new ModelContractError(
      model.id,
      `unet takes ${names.down.length} down-block residuals, but its config (block_out_channels ${JSON.stringify(channels)}, layers_per_block ${layers}) has ${expected.length} skip connections`,
    );
  }
  const slot = (name: string, want: { channels: number; level: number }) => {
    const declared = residualChannels(unet.inputs.get(name) as TensorSpec, model.id, "unet input");
    if (declared !== undefined && declared !== want.channels) {
      throw new ModelContractError(
        model.id,
        `unet input "${name}" has ${declared} channels; its config gives ${want.channels}`,
      );
    }
    return { name, channels: want.channels, level: want.level };
  };
  return {
    down: names.down.map((name, i) => slot(name, expected[i] as { channels: number; level: number })),
    mid: slot(names.mid, { channels: channels[channels.length - 1] as number, level: channels.length - 1 }),
  };
}

/** A latent side after `level` stride-2, padding-1, 3×3 convolutions (diffusers' Downsample2D): ⌈n / 2⌉ each. */
export function sideAtLevel(side: number, level: number): number {
  let n = side;
  for (let i = 0; i < level; i++) n = Math.ceil(n / 2);
  return n;
}
