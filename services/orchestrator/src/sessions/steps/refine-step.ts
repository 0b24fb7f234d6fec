import { FailedPreconditionError } from "@dmesh/runtime/errors";
import { generateOver } from "./generate-step.js";
import { num, type StepRunner, str } from "./step-context.js";

/** An img2img pass with the refiner model over each image: the SDXL refiner as a step of its own. */
export const runRefine: StepRunner = async (ctx) => {
  const model = str(ctx.param("model")) || ctx.spec.models?.refiner || "";
  if (!model)
    throw new FailedPreconditionError(
      `step ${ctx.step.id} (refine) needs a refiner: set spec.models.refiner or the step's model parameter`,
      "spec.models.refiner",
    );
  const steps = num(ctx.param("steps"));
  return generateOver(ctx, ctx.images("image"), {
    mode: "img2img",
    model,
    strength: num(ctx.param("strength")) ?? 0.3,
    ...(steps !== undefined ? { steps } : {}),
    refiner: false,
  });
};
