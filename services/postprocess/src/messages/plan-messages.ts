import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  type EncodeSpec,
  type EnhanceOp as EnhanceOpMessage,
  type GenerationParameters as ParametersMessage,
  type ProcessRequest,
  SafetyPolicy,
  UpscaleKernel,
  type UpscaleSpec,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { OutputFormat } from "../encode/encode-image.js";
import type { EnhanceOp } from "../enhance/enhance-op.js";
import type { EncodePlan, Postprocessor, ProcessPlan, UpscalePlan } from "../process/postprocessor.js";
import type { ResizeKernel } from "../resize/resize-image.js";
import type { SafetyPolicyName } from "../safety/safety-policy.js";
import { parametersFromMessage } from "./parameters-messages.js";

const FORMATS: Partial<Record<ImageEncoding, OutputFormat>> = {
  [ImageEncoding.UNSPECIFIED]: "png",
  [ImageEncoding.PNG]: "png",
  [ImageEncoding.JPEG]: "jpeg",
  [ImageEncoding.WEBP]: "webp",
  [ImageEncoding.AVIF]: "avif",
};
const KERNELS: Partial<Record<UpscaleKernel, ResizeKernel | "model">> = {
  [UpscaleKernel.UNSPECIFIED]: "lanczos3",
  [UpscaleKernel.LANCZOS3]: "lanczos3",
  [UpscaleKernel.LANCZOS2]: "lanczos2",
  [UpscaleKernel.MITCHELL]: "mitchell",
  [UpscaleKernel.CUBIC]: "cubic",
  [UpscaleKernel.LINEAR]: "linear",
  [UpscaleKernel.NEAREST]: "nearest",
  [UpscaleKernel.MODEL]: "model",
};
const POLICIES: Partial<Record<SafetyPolicy, SafetyPolicyName>> = {
  [SafetyPolicy.PASS]: "pass",
  [SafetyPolicy.FLAG]: "flag",
  [SafetyPolicy.BLUR]: "blur",
  [SafetyPolicy.REJECT]: "reject",
};

/** A Process request's plan, checked against what this service can do; fields are named under `prefix`. */
export function processPlanOf(
  req: ProcessRequest,
  prefix: string,
  postprocessor: Postprocessor,
): ProcessPlan {
  const spec = req.upscale;
  const upscale =
    spec && spec.factor !== 1 && (spec.factor !== 0 || spec.kernel === UpscaleKernel.MODEL)
      ? upscalePlanOf(spec, `${prefix}upscale`)
      : undefined;
  if (upscale) postprocessor.checkUpscale(upscale);
  return {
    safety: postprocessor.safety.resolvePolicy(
      policyNameOf(req.safety, `${prefix}safety`),
      req.tenant,
      `${prefix}safety`,
    ),
    ...(upscale ? { upscale } : {}),
    enhance: req.enhance.map((op, i) => enhanceOpOf(op, i, `${prefix}enhance`)),
    encode: encodePlanOf(req.encode, req.parameters, `${prefix}encode`),
  };
}

export function upscalePlanOf(spec: UpscaleSpec, field = "upscale"): UpscalePlan {
  const kernel = KERNELS[spec.kernel];
  if (!kernel) throw new InvalidArgumentError(`${field}.kernel`, "is not a known kernel");
  return { factor: spec.factor, kernel, model: spec.model };
}

/** The policy a request names; undefined when it names none (the tenant's or the service's default). */
export function policyNameOf(policy: SafetyPolicy, field: string): SafetyPolicyName | undefined {
  if (policy === SafetyPolicy.UNSPECIFIED) return undefined;
  const name = POLICIES[policy];
  if (!name) throw new InvalidArgumentError(field, "is not a known policy");
  return name;
}

export function encodePlanOf(
  spec: EncodeSpec | undefined,
  parameters: ParametersMessage | undefined,
  field: string,
): EncodePlan {
  const format = FORMATS[spec?.encoding ?? ImageEncoding.PNG];
  if (!format) throw new InvalidArgumentError(`${field}.encoding`, "must be PNG, JPEG, WEBP or AVIF");
  return {
    format,
    ...(spec?.quality ? { quality: spec.quality } : {}),
    ...(spec?.embedMetadata && parameters ? { parameters: parametersFromMessage(parameters) } : {}),
  };
}

export function enhanceOpOf(op: EnhanceOpMessage, i: number, field: string): EnhanceOp {
  const v = op.op;
  switch (v.case) {
    case "sharpenSigma":
      return { op: "sharpen", sigma: v.value };
    case "normalize":
      return { op: "normalize" };
    case "saturation":
      return { op: "modulate", saturation: v.value };
    case "brightness":
      return { op: "modulate", brightness: v.value };
    case "gamma":
      return { op: "gamma", gamma: v.value };
    case "medianSize":
      return { op: "denoise", size: v.value };
    default:
      throw new InvalidArgumentError(`${field}[${i}]`, "names no operation");
  }
}
