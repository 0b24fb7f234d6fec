import type { Sharp } from "sharp";
import { type RawImage, sharpFromRaw, toRawImage } from "../image/raw-image.js";
import { countImage } from "../postprocess-metrics.js";
import { checkEnhanceOps, type EnhanceOp } from "./enhance-op.js";

/**
 * Applies the steps in the order given. sharp runs the operations of one pipeline in a fixed order
 * (gamma-in, median, modulate, sharpen, gamma-out, normalise) and each setter only once, so the list is
 * cut into the fewest pipelines whose fixed order matches the requested one: a single pipeline for
 * any order sharp already follows. Pixels pass between pipelines as 8-bit raw buffers.
 */
export async function enhanceImage(
  image: RawImage,
  ops: readonly EnhanceOp[],
  signal?: AbortSignal,
): Promise<RawImage> {
  countImage("enhance");
  let current = image;
  for (const stage of planEnhancePipelines(checkEnhanceOps(ops))) {
    signal?.throwIfAborted();
    current = await toRawImage(stage.reduce(applyOp, sharpFromRaw(current)));
  }
  return current;
}

/** The steps grouped into sharp pipelines, in order. */
export function planEnhancePipelines(ops: readonly EnhanceOp[]): EnhanceOp[][] {
  const stages: EnhanceOp[][] = [];
  let stage: EnhanceOp[] = [];
  let lastPosition = -1;
  const setters = new Set<string>();
  for (const op of ops) {
    const { position, setter } = pipelineSlot(op);
    if (position <= lastPosition || setters.has(setter)) {
      stages.push(stage);
      stage = [];
      setters.clear();
    }
    stage.push(op);
    setters.add(setter);
    lastPosition = position;
  }
  if (stage.length > 0) stages.push(stage);
  return stages;
}

/** Where sharp's pipeline (src/pipeline.cc) runs the step, and which option setter it uses. */
function pipelineSlot(op: EnhanceOp): { position: number; setter: string } {
  switch (op.op) {
    case "gamma":
      // gamma(g, 1) darkens before resizing; gamma(1, g) brightens near the end.
      return { position: op.gamma < 1 ? 0 : 4, setter: "gamma" };
    case "denoise":
      return { position: 1, setter: "median" };
    case "modulate":
      return { position: 2, setter: "modulate" };
    case "sharpen":
      return { position: 3, setter: "sharpen" };
    case "normalize":
      return { position: 5, setter: "normalise" };
  }
}

function applyOp(pipeline: Sharp, op: EnhanceOp): Sharp {
  switch (op.op) {
    case "sharpen":
      return pipeline.sharpen({ sigma: op.sigma });
    case "normalize":
      return pipeline.normalise({ lower: op.lower ?? 1, upper: op.upper ?? 99 });
    case "modulate":
      return pipeline.modulate({ brightness: op.brightness ?? 1, saturation: op.saturation ?? 1 });
    case "gamma":
      // sharp raises to 1/gamma-out after processing and to gamma-in before it; both must be 1–3.
      return op.gamma >= 1 ? pipeline.gamma(1, op.gamma) : pipeline.gamma(1 / op.gamma, 1);
    case "denoise":
      return pipeline.median(op.size);
  }
}
