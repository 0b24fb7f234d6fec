import { runControl } from "./control-step.js";
import { runEncode } from "./encode-step.js";
import { runEnhance } from "./enhance-step.js";
import { runFanOut } from "./fan-out-step.js";
import { runGenerate } from "./generate-step.js";
import { runHires } from "./hires-step.js";
import { runRefine } from "./refine-step.js";
import { runSafety } from "./safety-step.js";
import type { StepRunner } from "./step-context.js";
import { runUpscale } from "./upscale-step.js";

/** One module per step kind (the kinds of workflows/step-kinds.ts). */
export const STEP_RUNNERS: Readonly<Record<string, StepRunner>> = {
  generate: runGenerate,
  refine: runRefine,
  hires: runHires,
  upscale: runUpscale,
  enhance: runEnhance,
  safety: runSafety,
  control: runControl,
  encode: runEncode,
  fan_out: runFanOut,
};
