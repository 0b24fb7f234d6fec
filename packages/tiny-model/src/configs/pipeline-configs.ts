import type { TinyModelOptions } from "../options.js";

// model_index.json as `optimum-cli export onnx` writes it (the source pipeline's own config, saved
// with `pipeline.save_config`) and scheduler_config.json exactly as the real checkpoints ship it.

type Component = readonly [string, string] | readonly [null, null];
const NONE: Component = [null, null];

function pipelineClass(o: TinyModelOptions): string {
  const family = o.kind === "sd15" || o.kind === "sd2" ? "StableDiffusion" : "StableDiffusionXL";
  if (o.unetInChannels === 9) return `${family}InpaintPipeline`;
  return o.kind === "sdxl-refiner" ? `${family}Img2ImgPipeline` : `${family}Pipeline`;
}

export function modelIndex(o: TinyModelOptions): Record<string, unknown> {
  const scheduler: Component = ["diffusers", schedulerConfig(o.kind)._class_name as string];
  const clip: Component = ["transformers", "CLIPTextModel"];
  const tokenizer: Component = ["transformers", "CLIPTokenizer"];
  const shared = {
    unet: ["diffusers", "UNet2DConditionModel"],
    vae: ["diffusers", "AutoencoderKL"],
  };
  if (o.kind === "sd15" || o.kind === "sd2") {
    return {
      _class_name: pipelineClass(o),
      _diffusers_version: o.kind === "sd2" ? "0.8.0" : "0.6.0",
      feature_extractor: NONE,
      requires_safety_checker: false,
      safety_checker: NONE,
      scheduler,
      text_encoder: clip,
      tokenizer,
      ...shared,
    };
  }
  const refiner = o.kind === "sdxl-refiner";
  return {
    _class_name: pipelineClass(o),
    _diffusers_version: "0.19.0.dev0",
    force_zeros_for_empty_prompt: !refiner,
    add_watermarker: null,
    ...(refiner && { requires_aesthetics_score: true }),
    scheduler,
    text_encoder: refiner ? NONE : clip,
    text_encoder_2: ["transformers", "CLIPTextModelWithProjection"],
    tokenizer: refiner ? NONE : tokenizer,
    tokenizer_2: tokenizer,
    ...shared,
  };
}

/** SDXL base/refiner 1.0: EulerDiscreteScheduler; SD 1.5: PNDMScheduler; SD 2.1 (768-v): v-prediction DDIM. */
export function schedulerConfig(kind: TinyModelOptions["kind"]): Record<string, unknown> {
  if (kind === "sd2") {
    return {
      _class_name: "DDIMScheduler",
      _diffusers_version: "0.8.0",
      beta_end: 0.012,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      clip_sample: false,
      num_train_timesteps: 1000,
      prediction_type: "v_prediction",
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      trained_betas: null,
    };
  }
  if (kind === "sd15") {
    return {
      _class_name: "PNDMScheduler",
      _diffusers_version: "0.6.0",
      beta_end: 0.012,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      num_train_timesteps: 1000,
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      trained_betas: null,
      clip_sample: false,
    };
  }
  return {
    _class_name: "EulerDiscreteScheduler",
    _diffusers_version: "0.19.0.dev0",
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    beta_start: 0.00085,
    clip_sample: false,
    interpolation_type: "linear",
    num_train_timesteps: 1000,
    prediction_type: "epsilon",
    sample_max_value: 1.0,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    steps_offset: 1,
    timestep_spacing: "leading",
    trained_betas: null,
    use_karras_sigmas: false,
  };
}
