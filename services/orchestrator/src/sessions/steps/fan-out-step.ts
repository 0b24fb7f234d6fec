import { num, type StepRunner, type WorkflowImage } from "./step-context.js";

/**
 * Fans out over a step's images: each image `copies` times, so that the step after it makes that many
 * variants of each (a generation moves the seed on per image).
 */
export const runFanOut: StepRunner = async (ctx) => {
  const copies = num(ctx.param("copies")) ?? 2;
  const out: WorkflowImage[] = [];
  for (const source of ctx.images("image")) for (let c = 0; c < copies; c++) out.push(source);
  return out;
};
