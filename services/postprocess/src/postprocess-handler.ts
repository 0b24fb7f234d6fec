import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type Image, ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  type EncodeSpec,
  type EnhanceOp as EnhanceOpProto,
  type GenerationParameters as ParametersProto,
  type PostprocessService,
  type ProcessRequest,
  SafetyPolicy,
  UpscaleKernel,
  type UpscaleSpec,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { DomainError, InvalidArgumentError, ResourceExhaustedError } from "@dmesh/runtime";
import { encodeImage, type OutputFormat } from "./encode/encode-image.js";
import { readGenerationParameters } from "./encode/read-generation-parameters.js";
import { enhanceImage } from "./enhance/enhance-image.js";
import type { EnhanceOp } from "./enhance/enhance-op.js";
import { checkRawImage, type RawImage } from "./image/raw-image.js";
import { formatInfotext } from "./infotext/format-infotext.js";
import type { GenerationParameters } from "./infotext/generation-parameters.js";
import { parametersFromInfotext } from "./infotext/parameters-from-infotext.js";
import { parseInfotext } from "./infotext/parse-infotext.js";
import { decodeUntrustedImage } from "./limits/decode-untrusted-image.js";
import { ImageInputError } from "./limits/image-input-error.js";
import type { ImageLimits } from "./limits/image-limits.js";
import { type ResizeKernel, resizeImage } from "./resize/resize-image.js";

const FORMATS: Partial<Record<ImageEncoding, OutputFormat>> = {
  [ImageEncoding.UNSPECIFIED]: "png",
  [ImageEncoding.PNG]: "png",
  [ImageEncoding.JPEG]: "jpeg",
  [ImageEncoding.WEBP]: "webp",
  [ImageEncoding.AVIF]: "avif",
};
const ENCODINGS: Record<OutputFormat, ImageEncoding> = {
  png: ImageEncoding.PNG,
  jpeg: ImageEncoding.JPEG,
  webp: ImageEncoding.WEBP,
  avif: ImageEncoding.AVIF,
};
const KERNELS: Partial<Record<UpscaleKernel, ResizeKernel>> = {
  [UpscaleKernel.UNSPECIFIED]: "lanczos3",
  [UpscaleKernel.LANCZOS3]: "lanczos3",
  [UpscaleKernel.LANCZOS2]: "lanczos2",
  [UpscaleKernel.MITCHELL]: "mitchell",
  [UpscaleKernel.CUBIC]: "cubic",
  [UpscaleKernel.LINEAR]: "linear",
  [UpscaleKernel.NEAREST]: "nearest",
};

/** PostprocessService transport: proto <-> domain images and parameters, domain errors to status codes. */
export class PostprocessHandler implements ServiceImpl<typeof PostprocessService> {
  constructor(private readonly limits: Partial<ImageLimits>) {}

  async process(req: ProcessRequest, ctx: HandlerContext) {
    return mapErrors(async () => {
      const started = performance.now();
      let image = await this.decode(req.image, "image");
      const safety = {
        policy: req.safety || SafetyPolicy.PASS,
        score: 0,
        flagged: false,
        action: "passed",
        classifier: "none",
      };
      if (
        req.safety === SafetyPolicy.BLUR ||
        req.safety === SafetyPolicy.REJECT ||
        req.safety === SafetyPolicy.FLAG
      ) {
        throw new InvalidArgumentError(
          "safety",
          "no safety classifier is configured on this postprocess service",
        );
      }
      if (req.upscale && req.upscale.factor > 1) image = await upscale(image, req.upscale);
      if (ctx.signal.aborted) throw ctx.signal.reason;
      if (req.enhance.length > 0) image = await enhanceImage(image, req.enhance.map(enhanceOp));
      const encoded = await encode(image, req.encode, req.parameters);
      return { image: encoded, safety, seconds: (performance.now() - started) / 1000 };
    });
  }

  async upscale(req: { image?: Image; upscale?: UpscaleSpec }) {
    return mapErrors(async () => {
      if (!req.upscale) throw new InvalidArgumentError("upscale", "is required");
      return { image: toProto(await upscale(await this.decode(req.image, "image"), req.upscale)) };
    });
  }

  async enhance(req: { image?: Image; ops: EnhanceOpProto[] }) {
    return mapErrors(async () => {
      if (req.ops.length === 0) throw new InvalidArgumentError("ops", "needs at least one operation");
      return {
        image: toProto(await enhanceImage(await this.decode(req.image, "image"), req.ops.map(enhanceOp))),
      };
    });
  }

  async checkSafety(req: { image?: Image; policy: SafetyPolicy }) {
    return mapErrors(async () => {
      await this.decode(req.image, "image");
      if (req.policy !== SafetyPolicy.PASS && req.policy !== SafetyPolicy.UNSPECIFIED) {
        throw new InvalidArgumentError(
          "policy",
          "no safety classifier is configured on this postprocess service",
        );
      }
      return { result: { policy: SafetyPolicy.PASS, action: "passed", classifier: "none" } };
    });
  }

  async encode(req: { image?: Image; encode?: EncodeSpec; parameters?: ParametersProto }) {
    return mapErrors(async () => ({
      image: await encode(await this.decode(req.image, "image"), req.encode, req.parameters),
    }));
  }

  async readMetadata(req: { image?: Image }) {
    return mapErrors(async () => {
      if (!req.image || req.image.data.length === 0) throw new InvalidArgumentError("image", "is required");
      const infotext = (await readGenerationParameters(req.image.data, "image.data")) ?? "";
      if (!infotext) return { infotext };
      return { infotext, parameters: parametersToProto(parametersFromInfotext(parseInfotext(infotext))) };
    });
  }

  private async decode(image: Image | undefined, field: string): Promise<RawImage> {
    if (!image || image.data.length === 0) throw new InvalidArgumentError(field, "is required");
    if (image.encoding === ImageEncoding.RAW) {
      if (image.channels !== 3 && image.channels !== 4)
        throw new InvalidArgumentError(`${field}.channels`, "must be 3 or 4");
      return checkRawImage(
        { data: image.data, width: image.width, height: image.height, channels: image.channels },
        field,
      );
    }
    return decodeUntrustedImage(image.data, { field: `${field}.data`, limits: this.limits });
  }
}

async function upscale(image: RawImage, spec: UpscaleSpec): Promise<RawImage> {
  if (![1, 2, 4].includes(spec.factor)) throw new InvalidArgumentError("upscale.factor", "must be 1, 2 or 4");
  const kernel = KERNELS[spec.kernel];
  if (!kernel)
    throw new InvalidArgumentError(
      "upscale.kernel",
      "model-based upscaling is not configured on this service",
    );
  return spec.factor === 1 ? image : resizeImage(image, { scale: spec.factor, kernel });
}

async function encode(
  image: RawImage,
  spec: EncodeSpec | undefined,
  parameters: ParametersProto | undefined,
): Promise<Image> {
  const format = FORMATS[spec?.encoding ?? ImageEncoding.PNG];
  if (!format) throw new InvalidArgumentError("encode.encoding", "must be PNG, JPEG, WEBP or AVIF");
  const infotext =
    spec?.embedMetadata && parameters ? formatInfotext(parametersFromProto(parameters)) : undefined;
  const encoded = await encodeImage(image, {
    format,
    ...(spec?.quality ? { quality: spec.quality } : {}),
    ...(infotext !== undefined ? { infotext } : {}),
  });
  return {
    $typeName: "dmesh.common.v1.Image",
    encoding: ENCODINGS[encoded.format],
    data: encoded.bytes,
    width: encoded.width,
    height: encoded.height,
    channels: image.channels,
  };
}

function toProto(image: RawImage): Image {
  return {
    $typeName: "dmesh.common.v1.Image",
    encoding: ImageEncoding.RAW,
    data: image.data,
    width: image.width,
    height: image.height,
    channels: image.channels,
  };
}

function enhanceOp(op: EnhanceOpProto, i: number): EnhanceOp {
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
      throw new InvalidArgumentError(`ops[${i}]`, "names no operation");
  }
}

function parametersFromProto(p: ParametersProto): GenerationParameters {
  return {
    prompt: p.prompt,
    ...(p.negativePrompt ? { negativePrompt: p.negativePrompt } : {}),
    ...(p.steps ? { steps: p.steps } : {}),
    ...(p.sampler ? { sampler: p.sampler } : {}),
    ...(p.scheduleType ? { scheduleType: p.scheduleType } : {}),
    ...(p.cfgScale ? { cfgScale: Math.round(p.cfgScale * 1000) / 1000 } : {}),
    seed: Number(p.seed),
    ...(p.width ? { width: p.width, height: p.height } : {}),
    ...(p.modelHash ? { modelHash: p.modelHash } : {}),
    ...(p.model ? { model: p.model } : {}),
    ...(Object.keys(p.extra).length ? { extra: p.extra } : {}),
  };
}

function parametersToProto(p: GenerationParameters) {
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.extra ?? {})) extra[k] = String(v);
  return {
    prompt: p.prompt,
    negativePrompt: p.negativePrompt ?? "",
    steps: p.steps ?? 0,
    sampler: p.sampler ?? "",
    scheduleType: p.scheduleType ?? "",
    cfgScale: p.cfgScale ?? 0,
    seed: BigInt(Math.max(0, Math.trunc(p.seed ?? 0))),
    width: p.width ?? 0,
    height: p.height ?? 0,
    model: p.model ?? "",
    modelHash: p.modelHash ?? "",
    extra,
  };
}

/** The domain's own error types become the runtime's, so the one error table maps them to status codes. */
async function mapErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof DomainError) throw err;
    if (err instanceof ImageInputError) {
      const reason = err.message.slice(err.field.length + 2);
      throw err.code === "too_large"
        ? new ResourceExhaustedError(`${err.field}: ${reason}`)
        : new InvalidArgumentError(err.field, reason);
    }
    throw err;
  }
}
