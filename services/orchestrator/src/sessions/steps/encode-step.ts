import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { SafetyPolicy } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { DEFAULTS } from "@dmesh/spec";
import { infotextParameters } from "../infotext-parameters.js";
import { num, type StepContext, type StepRunner, str } from "./step-context.js";

const FORMATS: Record<string, ImageEncoding> = {
  png: ImageEncoding.PNG,
  jpeg: ImageEncoding.JPEG,
  webp: ImageEncoding.WEBP,
};

/**
 * Encodes each image with its generation parameters (AUTOMATIC1111 infotext, plus what earlier steps noted)
 * and stores it as an artifact of the session. An image no safety step has judged gets the tenant's policy
 * here, as before workflows had safety steps.
 */
export const runEncode: StepRunner = async (ctx) => {
  const spec = ctx.spec;
  const encoding = FORMATS[str(ctx.param("format")) ?? ""] ?? (spec.output?.encoding || ImageEncoding.PNG);
  const quality = num(ctx.param("quality")) ?? spec.output?.quality ?? 0;
  const metadata = ctx.param("metadata") !== false;
  const strength = passStrength(ctx);
  for (const [i, source] of ctx.images("image").entries()) {
    const { image } = source;
    const seed = source.seed ?? ctx.session.seeds[i] ?? spec.params?.seed ?? 0n;
    const base = infotextParameters(
      spec,
      seed,
      { width: image.width, height: image.height },
      ctx.modelUsed,
      strength,
      source.generated ?? [],
      source.scheduler,
    );
    const parameters = { ...base, extra: { ...base.extra, ...source.notes } };
    const encode = { encoding, quality, embedMetadata: metadata };
    const encoded = source.safetyChecked
      ? await ctx.mesh.encode({ image, encode, ...(metadata ? { parameters } : {}) })
      : await ctx.mesh.process({
          image,
          parameters,
          // The tenant's own policy (postprocess's SAFETY_POLICY) decides.
          safety: SafetyPolicy.UNSPECIFIED,
          tenant: ctx.session.tenant,
          encode,
        });
    await ctx.storeArtifact(encoded, { width: image.width, height: image.height, imageIndex: i, seed });
  }
  return [];
};

/** The strength of the image-to-image pass that made the images, which A1111 records. */
function passStrength(ctx: StepContext): number | undefined {
  const source = ctx.sourceOf("image");
  if (source?.kind !== "generate") return undefined;
  const mode = source.params.mode ?? (source.inputs.image ? "img2img" : "txt2img");
  if (mode === "txt2img") return undefined;
  const strength = source.params.strength;
  return typeof strength === "number" ? strength : (ctx.spec.params?.strength ?? DEFAULTS.strength);
}
