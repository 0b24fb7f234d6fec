import { generateOver } from "./generate-step.js";
import { num, type StepRunner, str } from "./step-context.js";
import { upscaleEach } from "./upscale-step.js";

/**
 * Hires fix: upscale (lanczos or an SR model), then an img2img pass at the larger size to add detail. The
 * infotext records it as AUTOMATIC1111 does (Hires upscale, Hires upscaler, Denoising strength).
 */
export const runHires: StepRunner = async (ctx) => {
  const scale = num(ctx.param("scale")) ?? 2;
  const upscaler = str(ctx.param("upscaler")) ?? "lanczos";
  const strength = num(ctx.param("strength")) ?? 0.5;
  const steps = num(ctx.param("steps"));
  const upscaled = await upscaleEach(ctx, ctx.images("image"));
  const notes: Record<string, string> = {
    "Hires upscale": String(scale),
    "Hires upscaler": upscaler === "lanczos" ? "Lanczos" : upscaler,
    "Denoising strength": String(strength),
  };
  if (steps !== undefined) notes["Hires steps"] = String(steps);
  return generateOver(
    ctx,
    upscaled,
    { mode: "img2img", strength, ...(steps !== undefined ? { steps } : {}), refiner: false },
    [],
    notes,
  );
};
