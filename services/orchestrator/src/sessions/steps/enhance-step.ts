import type { MessageInitShape } from "@bufbuild/protobuf";
import type { EnhanceOpSchema } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { num, type StepRunner, type WorkflowImage } from "./step-context.js";

/** The step's parameters as postprocess enhance ops, in a fixed order. */
export const runEnhance: StepRunner = async (ctx) => {
  const ops: MessageInitShape<typeof EnhanceOpSchema>[] = [];
  const add = (name: string, op: "sharpenSigma" | "saturation" | "brightness" | "gamma") => {
    const v = num(ctx.param(name));
    if (v !== undefined && v > 0) ops.push({ op: { case: op, value: v } });
  };
  add("sharpen", "sharpenSigma");
  add("saturation", "saturation");
  add("brightness", "brightness");
  add("gamma", "gamma");
  if (ctx.param("normalize") === true) ops.push({ op: { case: "normalize", value: true } });
  const median = num(ctx.param("median"));
  if (median) ops.push({ op: { case: "medianSize", value: median } });
  const out: WorkflowImage[] = [];
  for (const source of ctx.images("image"))
    out.push(ops.length === 0 ? source : { ...source, image: await ctx.mesh.enhance(source.image, ops) });
  return out;
};
