import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  UpscaleKernel,
  type UpscaleSpecSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { num, type StepContext, type StepRunner, str, type WorkflowImage } from "./step-context.js";

/** "lanczos" or an SR model directory name, as the postprocess service's UpscaleSpec. */
export function upscaleSpec(ctx: StepContext): MessageInitShape<typeof UpscaleSpecSchema> {
  const upscaler = str(ctx.param("upscaler")) ?? "lanczos";
  const factor = num(ctx.param("scale")) ?? 2;
  return upscaler === "lanczos"
    ? { factor, kernel: UpscaleKernel.LANCZOS3 }
    : { factor, kernel: UpscaleKernel.MODEL, model: upscaler };
}

export async function upscaleEach(
  ctx: StepContext,
  images: readonly WorkflowImage[],
): Promise<WorkflowImage[]> {
  const spec = upscaleSpec(ctx);
  const out: WorkflowImage[] = [];
  for (const source of images) out.push({ ...source, image: await ctx.mesh.upscale(source.image, spec) });
  return out;
}

/** Lanczos or a super-resolution model, through the postprocess service. */
export const runUpscale: StepRunner = (ctx) => upscaleEach(ctx, ctx.images("image"));
