import type { EnumOption } from "./scheduler-config.js";

export type PredictionType = "epsilon" | "sample" | "v_prediction";
export type TimestepSpacing = "linspace" | "leading" | "trailing";

export function predictionTypeOption<V extends PredictionType>(values: readonly V[]): EnumOption<V> {
  return {
    type: "enum",
    values,
    default: "epsilon" as V,
    description: "What the model predicts: the noise (epsilon), the clean sample, or v (Imagen Video, 2.4).",
  };
}

export function timestepSpacingOption(defaultSpacing: TimestepSpacing): EnumOption<TimestepSpacing> {
  return {
    type: "enum",
    values: ["linspace", "leading", "trailing"],
    default: defaultSpacing,
    description: "How inference timesteps are spread over training steps (arXiv:2305.08891, table 2).",
  };
}

export const stepsOffsetOption = {
  type: "integer",
  default: 0,
  min: 0,
  description: "Offset added to every timestep with leading spacing (Stable Diffusion uses 1).",
} as const;

export function clipSampleOptions(defaultClip: boolean) {
  return {
    clip_sample: { type: "boolean", default: defaultClip, description: "Clip the predicted clean sample." },
    clip_sample_range: {
      type: "number",
      default: 1.0,
      min: 0,
      description: "Clip the predicted clean sample to [-range, range].",
    },
  } as const;
}

export const setAlphaToOneOption = {
  type: "boolean",
  default: true,
  description: "Use alpha_prod = 1 past the last step (else the alpha of training step 0).",
} as const;
