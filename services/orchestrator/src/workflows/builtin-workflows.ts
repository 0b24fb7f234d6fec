import type {
  InputDeclaration,
  StepDefinition,
  WorkflowDefinition,
  WorkflowVersion,
} from "./workflow-definition.js";

/**
 * The built-in workflows, written in the same form as a user's workflow file. Read-only and versioned with the
 * code: change one and bump its version, so that sessions record which definition they ran.
 */
const spec: InputDeclaration = {
  name: "spec",
  type: "spec",
  required: true,
  description: "the generation spec",
};
const image: InputDeclaration = {
  name: "image",
  type: "image",
  required: true,
  description: "the image to start from",
};
const mask: InputDeclaration = {
  name: "mask",
  type: "image",
  required: true,
  description: "white = repaint",
};

const step = (
  id: string,
  kind: string,
  inputs: Record<string, string>,
  params: StepDefinition["params"] = {},
): StepDefinition => ({ id, kind, inputs, params, dependsOn: [] });
const generate = (params: StepDefinition["params"], inputs: Record<string, string> = {}) =>
  step("generate", "generate", { spec: "input.spec", ...inputs }, params);
const encode = (from: string) => step("encode", "encode", { image: `${from}.images`, spec: "input.spec" });

const BUILTINS: readonly WorkflowDefinition[] = [
  {
    id: "txt2img",
    name: "Text to image",
    description: "Generate images from a prompt, then encode them with their generation parameters.",
    categories: ["generation"],
    inputs: [spec],
    steps: [generate({ mode: "txt2img" }), encode("generate")],
  },
  {
    id: "img2img",
    name: "Image to image",
    description: "Re-draw an input image guided by a prompt (strength sets how far it may move).",
    categories: ["generation", "editing"],
    inputs: [spec, image],
    steps: [generate({ mode: "img2img" }, { image: "input.image" }), encode("generate")],
  },
  {
    id: "inpaint",
    name: "Inpaint",
    description: "Repaint the masked part of an input image.",
    categories: ["editing"],
    inputs: [spec, image, mask],
    steps: [generate({ mode: "inpaint" }, { image: "input.image", mask: "input.mask" }), encode("generate")],
  },
  {
    id: "txt2img-hires",
    name: "Text to image with hires fix",
    description: "Generate, upscale 2x, then run an img2img pass at the larger size to add detail.",
    categories: ["generation"],
    inputs: [spec],
    steps: [
      generate({ mode: "txt2img" }),
      step("upscale", "upscale", { image: "generate.images" }, { scale: 2, upscaler: "lanczos" }),
      step(
        "hires",
        "generate",
        { spec: "input.spec", image: "upscale.images" },
        { mode: "img2img", strength: 0.5 },
      ),
      encode("hires"),
    ],
  },
  {
    id: "sdxl-refiner",
    name: "SDXL base + refiner",
    description: "The base model runs the first part of the schedule and the refiner finishes it.",
    categories: ["generation"],
    inputs: [spec],
    steps: [generate({ mode: "txt2img", refiner: true }), encode("generate")],
  },
  {
    id: "upscale-enhance",
    name: "Upscale and enhance",
    description: "Upscale an uploaded image and sharpen it; no diffusion.",
    categories: ["upscaling"],
    inputs: [{ ...spec, required: false }, image],
    steps: [
      step("upscale", "upscale", { image: "input.image" }, { scale: 2, upscaler: "lanczos" }),
      step("enhance", "enhance", { image: "upscale.images" }, { sharpen: 1 }),
      encode("enhance"),
    ],
  },
  {
    id: "style-transfer",
    name: "Style transfer",
    description: "img2img with a style prompt; run it as a batch over many input images.",
    categories: ["editing"],
    inputs: [spec, image],
    steps: [generate({ mode: "img2img" }, { image: "input.image" }), encode("generate")],
  },
];

/** Version 1 of each: none has changed since workflows became data. */
export const BUILTIN_WORKFLOWS: readonly WorkflowVersion[] = BUILTINS.map((definition) => ({
  definition,
  version: 1,
  builtin: true,
}));
