import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Image } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  type ProcessResponseSchema,
  SafetyPolicy,
  type SafetyResultSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import type { SafetyPolicyName } from "../safety/safety-policy.js";
import type { SafetyVerdict } from "../safety/safety-stage.js";

const POLICY_ENUMS: Record<SafetyPolicyName, SafetyPolicy> = {
  pass: SafetyPolicy.PASS,
  flag: SafetyPolicy.FLAG,
  blur: SafetyPolicy.BLUR,
  reject: SafetyPolicy.REJECT,
};

export function verdictMessage(v: SafetyVerdict): MessageInitShape<typeof SafetyResultSchema> {
  return {
    policy: POLICY_ENUMS[v.policy],
    score: v.score,
    flagged: v.flagged,
    action: v.action,
    classifier: v.classifier,
    threshold: v.threshold,
  };
}

/** A Process answer: the image, the safety verdict, and the seconds since `started` (performance.now()). */
export function processResponseMessage(
  image: Image,
  safety: SafetyVerdict,
  started: number,
): MessageInitShape<typeof ProcessResponseSchema> {
  return { image, safety: verdictMessage(safety), seconds: (performance.now() - started) / 1000 };
}
