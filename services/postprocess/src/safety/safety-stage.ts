import { FailedPreconditionError, InvalidArgumentError } from "@dmesh/runtime/errors";
import { inSpan } from "@dmesh/runtime/tracing";
import { type RawImage, sharpFromRaw, toRawImage } from "../image/raw-image.js";
import { countImage } from "../postprocess-metrics.js";
import type { SafetyClassifier } from "./safety-classifier.js";
import type { SafetyPolicyName, SafetyPolicyTable } from "./safety-policy.js";

export type SafetyAction = "passed" | "flagged" | "blurred" | "rejected";

/** What the safety stage decided about one image; it goes into the response and the image's metadata. */
export interface SafetyVerdict {
  readonly policy: SafetyPolicyName;
  /** Probability that the image is unsafe; 0 when no classifier ran. */
  readonly score: number;
  readonly flagged: boolean;
  readonly action: SafetyAction;
  /** The classifier's name, "none" when there is none. */
  readonly classifier: string;
  readonly threshold: number;
}

export interface SafetyStageOptions {
  readonly classifier: SafetyClassifier | undefined;
  readonly policies: SafetyPolicyTable;
  /** Scores at or above it are flagged. */
  readonly threshold: number;
}

/** Infotext keys the verdict is recorded under, so it stays in the file (`Safety: flagged 0.83`). */
export const SAFETY_INFOTEXT_KEY = "Safety";
export const SAFETY_MODEL_INFOTEXT_KEY = "Safety model";

/**
 * Classifies images and applies a policy: pass (report only), flag (mark), blur (a gaussian blur over the
 * whole image, strong enough that nothing is recognisable) or reject. Without a classifier only pass is
 * possible.
 */
export class SafetyStage {
  constructor(private readonly options: SafetyStageOptions) {}

  get classifierName(): string {
    return this.options.classifier?.name ?? "none";
  }

  /** The request's policy, else its tenant's default; refused (`field`) if it needs a missing classifier. */
  resolvePolicy(requested: SafetyPolicyName | undefined, tenant: string, field: string): SafetyPolicyName {
    const policy = requested ?? this.options.policies.tenants.get(tenant) ?? this.options.policies.fallback;
    if (policy !== "pass" && !this.options.classifier) {
      throw new InvalidArgumentError(field, "no safety classifier is configured on this postprocess service");
    }
    return policy;
  }

  /** Classifies `image` and applies `policy`; a rejected image comes back unchanged with action "rejected". */
  async apply(
    image: RawImage,
    policy: SafetyPolicyName,
    signal?: AbortSignal,
  ): Promise<{ verdict: SafetyVerdict; image: RawImage }> {
    countImage("safety");
    const { classifier, threshold } = this.options;
    const score = classifier
      ? await inSpan("model run safety_classifier", { "dmesh.model": classifier.name }, () =>
          classifier.score(image),
        )
      : 0;
    signal?.throwIfAborted();
    const flagged = classifier !== undefined && score >= threshold;
    const action: SafetyAction = !flagged ? "passed" : policy === "pass" ? "passed" : actionOf(policy);
    const verdict = { policy, score, flagged, action, classifier: this.classifierName, threshold };
    return { verdict, image: action === "blurred" ? await blurWhole(image) : image };
  }

  /** Throws FAILED_PRECONDITION naming the image when the verdict rejected it. */
  static throwIfRejected(verdict: SafetyVerdict, field: string): void {
    if (verdict.action !== "rejected") return;
    throw new FailedPreconditionError(
      `rejected by the safety policy: classifier "${verdict.classifier}" scored it ${verdict.score.toFixed(3)} unsafe (threshold ${verdict.threshold})`,
      field,
    );
  }

  /** The infotext fields recording a verdict; none when no classifier looked at the image. */
  static infotextFields(verdict: SafetyVerdict): Record<string, string> {
    if (verdict.classifier === "none") return {};
    return {
      [SAFETY_INFOTEXT_KEY]: `${verdict.action} ${verdict.score.toFixed(2)}`,
      [SAFETY_MODEL_INFOTEXT_KEY]: verdict.classifier,
    };
  }

  release(): Promise<void> {
    return this.options.classifier?.release() ?? Promise.resolve();
  }
}

function actionOf(policy: Exclude<SafetyPolicyName, "pass">): SafetyAction {
  return policy === "flag" ? "flagged" : policy === "blur" ? "blurred" : "rejected";
}

/** Sigma grows with the image (a 1024 px side gets 25) so that the blur hides content at any size. */
async function blurWhole(image: RawImage): Promise<RawImage> {
  const sigma = Math.min(100, Math.max(8, Math.max(image.width, image.height) / 40));
  return toRawImage(sharpFromRaw(image).blur(sigma));
}
