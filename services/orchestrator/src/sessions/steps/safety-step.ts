import { SafetyPolicy } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { type StepRunner, str, type WorkflowImage } from "./step-context.js";

const POLICIES: Record<string, SafetyPolicy> = {
  tenant: SafetyPolicy.UNSPECIFIED,
  pass: SafetyPolicy.PASS,
  flag: SafetyPolicy.FLAG,
  blur: SafetyPolicy.BLUR,
  reject: SafetyPolicy.REJECT,
};

/**
 * Classifies each image and applies the policy (the tenant's by default): a rejected image goes no further
 * (the session records why), a blurred one goes on blurred, and every verdict goes into its infotext.
 */
export const runSafety: StepRunner = async (ctx) => {
  const policy = POLICIES[str(ctx.param("policy")) ?? "tenant"] ?? SafetyPolicy.UNSPECIFIED;
  const out: WorkflowImage[] = [];
  for (const [i, source] of ctx.images("image").entries()) {
    const { result, image } = await ctx.mesh.checkSafety(source.image, policy);
    const verdict = `${result?.action ?? "passed"} ${(result?.score ?? 0).toFixed(2)}`;
    if (result?.action === "rejected") {
      ctx.reject(
        i,
        `rejected by the safety policy: classifier "${result.classifier}" scored it ${result.score.toFixed(3)} unsafe (threshold ${result.threshold})`,
      );
      continue;
    }
    const notes =
      result && result.classifier !== "none"
        ? { ...source.notes, Safety: verdict, "Safety model": result.classifier }
        : source.notes;
    out.push({ ...source, image: image ?? source.image, notes, safetyChecked: true });
  }
  return out;
};
