import type { JsonValue, ValueType } from "./workflow-definition.js";

/** A step's input port: what it accepts along an edge. */
export interface PortSpec {
  readonly type: "spec" | "image" | "images";
  readonly required: boolean;
}

/** A step parameter: its type and the values it may take. */
export interface ParamSpec {
  readonly type: "string" | "number" | "integer" | "boolean";
  readonly min?: number;
  readonly max?: number;
  /** The only values allowed (strings or numbers). */
  readonly oneOf?: readonly (string | number)[];
  readonly maxLength?: number;
  readonly default?: JsonValue;
}

export interface StepKind {
  /** The service that runs it. */
  readonly domain: "inference" | "postprocess";
  readonly description: string;
  readonly ports: Readonly<Record<string, PortSpec>>;
  readonly params: Readonly<Record<string, ParamSpec>>;
  /** Outputs other steps may reference ("images"); encode stores artifacts and has none. */
  readonly outputs: Readonly<Record<string, "images">>;
}

const spec: PortSpec = { type: "spec", required: true };
const images: PortSpec = { type: "images", required: true };
const fraction = (d?: number): ParamSpec => ({
  type: "number",
  min: 0,
  max: 1,
  ...(d !== undefined ? { default: d } : {}),
});
const denoiseSteps: ParamSpec = { type: "integer", min: 1, max: 150 };
/** "lanczos", or the name of a super-resolution model directory under postprocess's UPSCALE_MODELS_DIR. */
const upscaler: ParamSpec = { type: "string", maxLength: 128, default: "lanczos" };
/** Postprocess scales by 1, 2 or 4 (a model by its own scale when it has no other). */
const scale: ParamSpec = { type: "integer", oneOf: [1, 2, 4], default: 2 };
const out = { images: "images" } as const;

/** Every step kind a workflow may use: adding one means a line here and one module in sessions/steps. */
export const STEP_KINDS: Readonly<Record<string, StepKind>> = {
  generate: {
    domain: "inference",
    description: "txt2img, img2img or inpaint; the spec (adapters and ControlNets included) passes through",
    ports: {
      spec,
      image: { type: "images", required: false },
      mask: { type: "image", required: false },
      control: { type: "images", required: false },
    },
    params: {
      mode: { type: "string", oneOf: ["txt2img", "img2img", "inpaint"] },
      strength: fraction(),
      steps: denoiseSteps,
      guidance_scale: { type: "number", min: 0, max: 30 },
      prompt: { type: "string", maxLength: 4000 },
      negative_prompt: { type: "string", maxLength: 4000 },
      refiner: { type: "boolean", default: false },
    },
    outputs: out,
  },
  refine: {
    domain: "inference",
    description: "an img2img pass with the refiner model (the spec's models.refiner, or `model`)",
    ports: { spec, image: images },
    params: { model: { type: "string", maxLength: 256 }, strength: fraction(0.3), steps: denoiseSteps },
    outputs: out,
  },
  hires: {
    domain: "inference",
    description: "upscale (lanczos or an SR model), then an img2img pass at the larger size",
    ports: { spec, image: images },
    params: { scale, upscaler, strength: fraction(0.5), steps: denoiseSteps },
    outputs: out,
  },
  upscale: {
    domain: "postprocess",
    description: "lanczos or a super-resolution model",
    ports: { image: images },
    params: { scale, upscaler },
    outputs: out,
  },
  enhance: {
    domain: "postprocess",
    description: "sharpen, saturation, brightness, gamma, normalize, median",
    ports: { image: images },
    params: {
      sharpen: { type: "number", min: 0, max: 10, default: 1 },
      saturation: { type: "number", min: 0, max: 4 },
      brightness: { type: "number", min: 0, max: 4 },
      gamma: { type: "number", min: 1, max: 3 },
      normalize: { type: "boolean" },
      median: { type: "integer", min: 0, max: 15 },
    },
    outputs: out,
  },
  safety: {
    domain: "postprocess",
    description: "classify; pass, flag, blur or reject (the tenant's policy by default)",
    ports: { image: images },
    params: {
      policy: { type: "string", oneOf: ["tenant", "pass", "flag", "blur", "reject"], default: "tenant" },
    },
    outputs: out,
  },
  control: {
    domain: "inference",
    description: "a ControlNet preprocessor (canny, none): images to control maps",
    ports: { image: images },
    params: {
      preprocessor: { type: "string", maxLength: 64, default: "canny" },
      resolution: { type: "integer", min: 64, max: 2048 },
      width: { type: "integer", min: 0, max: 8192 },
      height: { type: "integer", min: 0, max: 8192 },
    },
    outputs: out,
  },
  encode: {
    domain: "postprocess",
    description: "encode with the generation parameters and store as artifacts",
    ports: { image: images, spec: { type: "spec", required: false } },
    params: {
      format: { type: "string", oneOf: ["png", "jpeg", "webp"] },
      quality: { type: "integer", min: 1, max: 100 },
      metadata: { type: "boolean", default: true },
    },
    outputs: {},
  },
  fan_out: {
    domain: "postprocess",
    description: "each image `copies` times, so that the next step makes that many variants of each",
    ports: { image: images },
    params: { copies: { type: "integer", min: 1, max: 16, default: 2 } },
    outputs: out,
  },
};

/** Whether a value of type `from` may flow into a port or parameter of type `to`. */
export function accepts(to: ValueType, from: ValueType): boolean {
  if (to === from) return true;
  if (to === "images" && from === "image") return true;
  return to === "number" && from === "integer";
}
