import type { GenerationModeName } from "@dmesh/spec";

/** One step of a workflow template; `inputs` wire names to "input.<name>" or "<step id>.<output>". */
export interface StepTemplate {
  readonly id: string;
  readonly domain: "inference" | "postprocess";
  /** generate: run the diffusion pipeline; upscale/enhance/encode: postprocess operations. */
  readonly operation: "generate" | "upscale" | "enhance" | "encode";
  readonly dependsOn: readonly string[];
  readonly inputs: Readonly<Record<string, string>>;
  /** generate: the mode this step runs in, and spec overrides (e.g. the hires pass's strength). */
  readonly mode?: GenerationModeName;
  readonly useRefiner?: boolean;
  readonly strength?: number;
  readonly upscaleFactor?: number;
}

export interface WorkflowTemplate {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly inputs: readonly { name: string; required: boolean; description: string }[];
  readonly requiredModels: readonly string[];
  readonly steps: readonly StepTemplate[];
}

const spec = { name: "spec", required: true, description: "the generation spec" };
const image = { name: "image", required: true, description: "the image to start from" };
const mask = { name: "mask", required: true, description: "white = repaint" };
const encode = (from: string): StepTemplate => ({
  id: "encode",
  domain: "postprocess",
  operation: "encode",
  dependsOn: [from],
  inputs: { image: `${from}.images`, spec: "input.spec" },
});

/** The built-in workflows. Templates are data: adding one needs no new code unless it adds an operation. */
export const BUILTIN_WORKFLOWS: readonly WorkflowTemplate[] = [
  {
    id: "txt2img",
    name: "Text to image",
    description: "Generate images from a prompt, then encode them with their generation parameters.",
    inputs: [spec],
    requiredModels: ["base"],
    steps: [
      {
        id: "generate",
        domain: "inference",
        operation: "generate",
        mode: "txt2img",
        dependsOn: [],
        inputs: { spec: "input.spec" },
      },
      encode("generate"),
    ],
  },
  {
    id: "img2img",
    name: "Image to image",
    description: "Re-draw an input image guided by a prompt (strength sets how far it may move).",
    inputs: [spec, image],
    requiredModels: ["base"],
    steps: [
      {
        id: "generate",
        domain: "inference",
        operation: "generate",
        mode: "img2img",
        dependsOn: [],
        inputs: { spec: "input.spec", image: "input.image" },
      },
      encode("generate"),
    ],
  },
  {
    id: "inpaint",
    name: "Inpaint",
    description: "Repaint the masked part of an input image.",
    inputs: [spec, image, mask],
    requiredModels: ["base"],
    steps: [
      {
        id: "generate",
        domain: "inference",
        operation: "generate",
        mode: "inpaint",
        dependsOn: [],
        inputs: { spec: "input.spec", image: "input.image", mask: "input.mask" },
      },
      encode("generate"),
    ],
  },
  {
    id: "txt2img-hires",
    name: "Text to image with hires fix",
    description: "Generate, upscale 2x, then run an img2img pass at the larger size to add detail.",
    inputs: [spec],
    requiredModels: ["base"],
    steps: [
      {
        id: "generate",
        domain: "inference",
        operation: "generate",
        mode: "txt2img",
        dependsOn: [],
        inputs: { spec: "input.spec" },
      },
      {
        id: "upscale",
        domain: "postprocess",
        operation: "upscale",
        upscaleFactor: 2,
        dependsOn: ["generate"],
        inputs: { image: "generate.images" },
      },
      {
        id: "hires",
        domain: "inference",
        operation: "generate",
        mode: "img2img",
        strength: 0.5,
        dependsOn: ["upscale"],
        inputs: { spec: "input.spec", image: "upscale.images" },
      },
      encode("hires"),
    ],
  },
  {
    id: "sdxl-refiner",
    name: "SDXL base + refiner",
    description: "The base model runs the first part of the schedule and the refiner finishes it.",
    inputs: [spec],
    requiredModels: ["base", "refiner"],
    steps: [
      {
        id: "generate",
        domain: "inference",
        operation: "generate",
        mode: "txt2img",
        useRefiner: true,
        dependsOn: [],
        inputs: { spec: "input.spec" },
      },
      encode("generate"),
    ],
  },
  {
    id: "upscale-enhance",
    name: "Upscale and enhance",
    description: "Upscale an uploaded image and sharpen it; no diffusion.",
    inputs: [{ ...spec, required: false }, image],
    requiredModels: [],
    steps: [
      {
        id: "upscale",
        domain: "postprocess",
        operation: "upscale",
        upscaleFactor: 2,
        dependsOn: [],
        inputs: { image: "input.image" },
      },
      {
        id: "enhance",
        domain: "postprocess",
        operation: "enhance",
        dependsOn: ["upscale"],
        inputs: { image: "upscale.images" },
      },
      encode("enhance"),
    ],
  },
  {
    id: "style-transfer",
    name: "Style transfer",
    description: "img2img with a style prompt; run it as a batch over many input images.",
    inputs: [spec, image],
    requiredModels: ["base"],
    steps: [
      {
        id: "generate",
        domain: "inference",
        operation: "generate",
        mode: "img2img",
        dependsOn: [],
        inputs: { spec: "input.spec", image: "input.image" },
      },
      encode("generate"),
    ],
  },
];
