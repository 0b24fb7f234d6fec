/**
 * What adapters need to know about a base model, and all they need: the weight-bearing modules of each
 * component, as the ONNX package's weight index finds them in a real export.
 */

/** The components an adapter can change, named as in a diffusers/optimum model directory. */
export type AdapterComponent = "unet" | "text_encoder" | "text_encoder_2";

export const ADAPTER_COMPONENTS: readonly AdapterComponent[] = ["unet", "text_encoder", "text_encoder_2"];

export interface ModuleWeight {
  /** The module's `weight` in PyTorch layout: Linear [out, in], Conv2d [out, in, kh, kw], norms [C]. */
  readonly shape: readonly number[];
}

/**
 * Module path (diffusers/transformers dotted path without `.weight`, e.g.
 * `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`,
 * `text_model.encoder.layers.0.self_attn.q_proj`) → its weight. Modules without a weight are absent.
 */
export type ComponentModules = ReadonlyMap<string, ModuleWeight>;

export interface AdapterTarget {
  /** The components this model has (the SDXL refiner has no `text_encoder`, SD 1.x no `text_encoder_2`). */
  readonly components: Readonly<Partial<Record<AdapterComponent, ComponentModules>>>;
  /**
   * The UNet config's `layers_per_block` (SD 1.x and SDXL: 2): how the original (SGM) block numbers of
   * kohya-ss SDXL LoRAs map onto diffusers' down/up blocks.
   */
  readonly unetLayersPerBlock: number;
}
