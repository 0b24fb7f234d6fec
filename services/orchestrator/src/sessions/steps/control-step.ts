import { num, type StepRunner, str, type WorkflowImage } from "./step-context.js";

/** ControlNet preprocessing on an inference replica: each image becomes a control map. */
export const runControl: StepRunner = async (ctx) => {
  const preprocessor = str(ctx.param("preprocessor")) ?? "canny";
  const out: WorkflowImage[] = [];
  for (const source of ctx.images("image")) {
    const map = await ctx.mesh.preprocessControl(
      source.image,
      preprocessor,
      num(ctx.param("resolution")) ?? 0,
      num(ctx.param("width")) ?? 0,
      num(ctx.param("height")) ?? 0,
    );
    out.push({ image: map, notes: {} });
  }
  return out;
};
