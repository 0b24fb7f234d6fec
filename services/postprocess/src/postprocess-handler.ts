import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type ControlNetUnitSchema, ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import {
  type Image,
  ImageEncoding,
  type SharedMemoryRef,
} from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  type CheckSafetyRequest,
  type EncodeRequest,
  type EncodeSpec,
  type EnhanceOp as EnhanceOpProto,
  type EnhanceRequest,
  type GenerationParameters as ParametersProto,
  type PostprocessService,
  type ProcessRequest,
  type ProcessResponseSchema,
  type ProcessStreamRequest,
  type ProcessStreamResponseSchema,
  type ReadMetadataRequest,
  SafetyPolicy,
  type SafetyResultSchema,
  UpscaleKernel,
  type UpscaleRequest,
  type UpscaleSpec,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { DomainError, InvalidArgumentError, ResourceExhaustedError } from "@dmesh/runtime";
import type { EncodedImage, OutputFormat } from "./encode/encode-image.js";
import { readGenerationParameters } from "./encode/read-generation-parameters.js";
import { enhanceImage } from "./enhance/enhance-image.js";
import type { EnhanceOp } from "./enhance/enhance-op.js";
import type { ImageSource } from "./image/image-source.js";
import type { RawImage } from "./image/raw-image.js";
import { controlNetUnitsFromInfotext, type InfotextControlNetUnit } from "./infotext/control-net-units.js";
import type { GenerationParameters } from "./infotext/generation-parameters.js";
import { parametersFromInfotext } from "./infotext/parameters-from-infotext.js";
import { parseInfotext } from "./infotext/parse-infotext.js";
import { ImageInputError } from "./limits/image-input-error.js";
import type {
  DeclaredImage,
  EncodePlan,
  Postprocessor,
  ProcessPlan,
  ProcessResult,
  UpscalePlan,
} from "./process/postprocessor.js";
import type { ResizeKernel } from "./resize/resize-image.js";
import type { SafetyPolicyName } from "./safety/safety-policy.js";
import type { SafetyVerdict } from "./safety/safety-stage.js";
import type { RegionSlice, SharedMemoryRegions } from "./shared-memory/shared-memory-regions.js";
import { collectBytes, splitBytes } from "./stream/byte-chunks.js";

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
const POLICY_ENUMS: Record<SafetyPolicyName, SafetyPolicy> = {
  pass: SafetyPolicy.PASS,
  flag: SafetyPolicy.FLAG,
  blur: SafetyPolicy.BLUR,
  reject: SafetyPolicy.REJECT,
};

/** Output chunk sizes a ProcessStream may ask for, and the default. */
const MIN_CHUNK_BYTES = 4 * 1024;
const MAX_CHUNK_BYTES = 4 * 1024 * 1024;
const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/** Room for a chunk message's own framing within MAX_MESSAGE_BYTES. */
const CHUNK_FRAMING_BYTES = 64;

/** PostprocessService transport: proto <-> domain images and parameters, domain errors to status codes. */
export class PostprocessHandler implements ServiceImpl<typeof PostprocessService> {
  constructor(
    private readonly postprocessor: Postprocessor,
    /** The server's message limit: output chunks stay under it. */
    private readonly maxMessageBytes: number,
    private readonly sharedMemory: SharedMemoryRegions,
  ) {}

  async process(req: ProcessRequest, ctx: HandlerContext) {
    return mapErrors(async () => {
      const started = performance.now();
      const plan = this.processPlan(req, "");
      const output = await this.outputRegion(req.outputSharedMemory);
      const result = await this.withInput(req.image, plan.upscale, ctx.signal, (image) =>
        this.postprocessor.process(image, plan, ctx.signal),
      );
      const image = await this.deliver(encodedToProto(result.image, true), output);
      return processResponse(image, result.safety, started);
    });
  }

  /** Process with the input and the output in chunks: for images over the message limit. */
  async *processStream(
    requests: AsyncIterable<ProcessStreamRequest>,
    ctx: HandlerContext,
  ): AsyncGenerator<MessageInitShape<typeof ProcessStreamResponseSchema>> {
    let result: ProcessResult;
    let chunkBytes: number;
    const started = performance.now();
    try {
      const parts = requests[Symbol.asyncIterator]();
      const first = await parts.next();
      if (first.done || first.value.part.case !== "start") {
        throw new InvalidArgumentError("start", "must be the first message of the stream");
      }
      const start = first.value.part.value;
      const req = start.request;
      if (!req?.image) throw new InvalidArgumentError("start.request.image", "is required");
      if (req.image.sharedMemory || req.outputSharedMemory) {
        throw new InvalidArgumentError(
          req.image.sharedMemory ? "start.request.image.shared_memory" : "start.request.output_shared_memory",
          "is for Process: ProcessStream carries the bytes in chunks",
        );
      }
      chunkBytes = this.chunkBytes(start.chunkBytes);
      const plan = this.processPlan(req, "start.request.");
      const image = req.image;
      if (image.data.length > 0) {
        throw new InvalidArgumentError(
          "start.request.image.data",
          "must be empty: the bytes follow as chunks",
        );
      }
      const byteLength = Number(start.imageBytes);
      if (byteLength === 0) throw new InvalidArgumentError("start.image_bytes", "is required");
      const receive = () => collectBytes(chunksOf(parts), byteLength, "start.image_bytes");
      result = await this.postprocessor.withDeclaredImage(
        declaredImage(image, byteLength, "start.image_bytes"),
        receive,
        "start.request.image",
        plan.upscale,
        ctx.signal,
        (decoded) => this.postprocessor.process(decoded, plan, ctx.signal),
      );
    } catch (error) {
      throw toDomainError(error);
    }
    const response = processResponse(encodedToProto(result.image, false), result.safety, started);
    yield { part: { case: "result", value: response } };
    for (const chunk of splitBytes(result.image.bytes, chunkBytes))
      yield { part: { case: "chunk", value: chunk } };
  }

  async upscale(req: UpscaleRequest, ctx: HandlerContext) {
    return mapErrors(async () => {
      if (!req.upscale) throw new InvalidArgumentError("upscale", "is required");
      const plan = upscalePlan(req.upscale);
      this.postprocessor.checkUpscale(plan);
      const output = await this.outputRegion(req.outputSharedMemory);
      const image = await this.withInput(req.image, plan, ctx.signal, (i) =>
        this.postprocessor.upscale(i, plan, ctx.signal),
      );
      return { image: await this.deliver(rawToProto(image), output) };
    });
  }

  async enhance(req: EnhanceRequest, ctx: HandlerContext) {
    return mapErrors(async () => {
      if (req.ops.length === 0) throw new InvalidArgumentError("ops", "needs at least one operation");
      const ops = req.ops.map((op, i) => enhanceOp(op, i, "ops"));
      const output = await this.outputRegion(req.outputSharedMemory);
      const image = await this.withInput(req.image, undefined, ctx.signal, (i) =>
        enhanceImage(i, ops, ctx.signal),
      );
      return { image: await this.deliver(rawToProto(image), output) };
    });
  }

  /** Reports the verdict; a rejecting policy answers action "rejected" here (Process fails instead). */
  async checkSafety(req: CheckSafetyRequest, ctx: HandlerContext) {
    return mapErrors(async () => {
      const safety = this.postprocessor.safety;
      const policy = safety.resolvePolicy(policyName(req.policy, "policy"), req.tenant, "policy");
      return this.withInput(req.image, undefined, ctx.signal, async (image) => {
        const checked = await safety.apply(image, policy, ctx.signal);
        return {
          result: verdictToProto(checked.verdict),
          ...(checked.image !== image ? { image: rawToProto(checked.image) } : {}),
        };
      });
    });
  }

  async encode(req: EncodeRequest, ctx: HandlerContext) {
    return mapErrors(async () => {
      const plan = encodePlan(req.encode, req.parameters, "encode");
      const output = await this.outputRegion(req.outputSharedMemory);
      const encoded = await this.withInput(req.image, undefined, ctx.signal, (i) =>
        this.postprocessor.encode(i, plan),
      );
      return { image: await this.deliver(encodedToProto(encoded, true), output) };
    });
  }

  async readMetadata(req: ReadMetadataRequest) {
    return mapErrors(async () => {
      if (req.image?.sharedMemory)
        throw new InvalidArgumentError("image.shared_memory", "is not read by ReadMetadata: send data");
      if (!req.image || req.image.data.length === 0) throw new InvalidArgumentError("image", "is required");
      const infotext = (await readGenerationParameters(req.image.data, "image.data")) ?? "";
      if (!infotext) return { infotext };
      const parameters = parametersFromInfotext(parseInfotext(infotext));
      return {
        infotext,
        parameters: {
          ...parametersToProto(parameters),
          controlNets: controlNetUnitsFromInfotext(parameters.extra ?? {}).map(controlNetUnitToProto),
        },
      };
    });
  }

  /**
   * Runs `work` on the request's image (field "image"): from the message, or read from the caller's
   * shared-memory region once the request is admitted, under the same limits.
   */
  private async withInput<T>(
    image: Image | undefined,
    upscale: UpscalePlan | undefined,
    signal: AbortSignal,
    work: (image: RawImage) => Promise<T>,
  ): Promise<T> {
    const ref = image?.sharedMemory;
    if (!image || !ref)
      return this.postprocessor.withImage(sourceOf(image, "image"), "image", upscale, signal, work);
    if (image.data.length > 0)
      throw new InvalidArgumentError("image.data", "must be empty when image.shared_memory is set");
    const slice = await this.sharedMemory.check(ref, "image.shared_memory", "read");
    return this.postprocessor.withDeclaredImage(
      declaredImage(image, slice.byteSize, "image.shared_memory.byte_size"),
      () => this.sharedMemory.read(slice),
      "image",
      upscale,
      signal,
      work,
    );
  }

  /** The caller's output region, checked before any work is done for it. */
  private outputRegion(ref: SharedMemoryRef | undefined): Promise<RegionSlice | undefined> {
    return ref ? this.sharedMemory.check(ref, "output_shared_memory", "write") : Promise.resolve(undefined);
  }

  /** The response's image: as it is, or written into the caller's output region and naming it. */
  private async deliver(image: Image, output: RegionSlice | undefined): Promise<Image> {
    if (!output) return image;
    const written = await this.sharedMemory.write(output, image.data);
    return {
      ...image,
      data: new Uint8Array(0),
      sharedMemory: { $typeName: "dmesh.common.v1.SharedMemoryRef", ...written },
    };
  }

  private processPlan(req: ProcessRequest, prefix: string): ProcessPlan {
    const spec = req.upscale;
    const upscale =
      spec && spec.factor !== 1 && (spec.factor !== 0 || spec.kernel === UpscaleKernel.MODEL)
        ? upscalePlan(spec, `${prefix}upscale`)
        : undefined;
    if (upscale) this.postprocessor.checkUpscale(upscale);
    return {
      safety: this.postprocessor.safety.resolvePolicy(
        policyName(req.safety, `${prefix}safety`),
        req.tenant,
        `${prefix}safety`,
      ),
      ...(upscale ? { upscale } : {}),
      enhance: req.enhance.map((op, i) => enhanceOp(op, i, `${prefix}enhance`)),
      encode: encodePlan(req.encode, req.parameters, `${prefix}encode`),
    };
  }

  private chunkBytes(requested: number): number {
    if (requested !== 0 && (requested < MIN_CHUNK_BYTES || requested > MAX_CHUNK_BYTES)) {
      throw new InvalidArgumentError(
        "start.chunk_bytes",
        `must be from ${MIN_CHUNK_BYTES} to ${MAX_CHUNK_BYTES}`,
      );
    }
    return Math.min(requested || DEFAULT_CHUNK_BYTES, this.maxMessageBytes - CHUNK_FRAMING_BYTES);
  }
}

/** The chunks after the first message; another start is a client error. */
async function* chunksOf(parts: AsyncIterator<ProcessStreamRequest>): AsyncGenerator<Uint8Array> {
  for (let next = await parts.next(); !next.done; next = await parts.next()) {
    if (next.value.part.case !== "chunk")
      throw new InvalidArgumentError("chunk", "only chunks may follow the start");
    yield next.value.part.value;
  }
}

function sourceOf(image: Image | undefined, field: string): ImageSource {
  if (!image || image.data.length === 0) throw new InvalidArgumentError(field, "is required");
  if (image.encoding !== ImageEncoding.RAW) return { kind: "encoded", bytes: image.data };
  if (image.channels !== 3 && image.channels !== 4)
    throw new InvalidArgumentError(`${field}.channels`, "must be 3 or 4");
  const { data, width, height, channels } = image;
  return { kind: "raw", image: { data, width, height, channels } };
}

function declaredImage(image: Image, byteLength: number, sizeField: string): DeclaredImage {
  return image.encoding === ImageEncoding.RAW
    ? {
        kind: "raw",
        byteLength,
        sizeField,
        width: image.width,
        height: image.height,
        channels: image.channels,
      }
    : { kind: "encoded", byteLength, sizeField };
}

function upscalePlan(spec: UpscaleSpec, field = "upscale"): UpscalePlan {
  const kernel = KERNELS[spec.kernel];
  if (!kernel) throw new InvalidArgumentError(`${field}.kernel`, "is not a known kernel");
  return { factor: spec.factor, kernel, model: spec.model };
}

function policyName(policy: SafetyPolicy, field: string): SafetyPolicyName | undefined {
  if (policy === SafetyPolicy.UNSPECIFIED) return undefined;
  const name = POLICIES[policy];
  if (!name) throw new InvalidArgumentError(field, "is not a known policy");
  return name;
}

function encodePlan(
  spec: EncodeSpec | undefined,
  parameters: ParametersProto | undefined,
  field: string,
): EncodePlan {
  const format = FORMATS[spec?.encoding ?? ImageEncoding.PNG];
  if (!format) throw new InvalidArgumentError(`${field}.encoding`, "must be PNG, JPEG, WEBP or AVIF");
  return {
    format,
    ...(spec?.quality ? { quality: spec.quality } : {}),
    ...(spec?.embedMetadata && parameters ? { parameters: parametersFromProto(parameters) } : {}),
  };
}

function processResponse(
  image: Image,
  safety: SafetyVerdict,
  started: number,
): MessageInitShape<typeof ProcessResponseSchema> {
  return {
    image,
    safety: verdictToProto(safety),
    seconds: (performance.now() - started) / 1000,
  };
}

function verdictToProto(v: SafetyVerdict): MessageInitShape<typeof SafetyResultSchema> {
  return {
    policy: POLICY_ENUMS[v.policy],
    score: v.score,
    flagged: v.flagged,
    action: v.action,
    classifier: v.classifier,
    threshold: v.threshold,
  };
}

function encodedToProto(encoded: EncodedImage, withData: boolean): Image {
  return {
    $typeName: "dmesh.common.v1.Image",
    encoding: ENCODINGS[encoded.format],
    data: withData ? encoded.bytes : new Uint8Array(0),
    width: encoded.width,
    height: encoded.height,
    channels: encoded.channels,
  };
}

function rawToProto(image: RawImage): Image {
  return {
    $typeName: "dmesh.common.v1.Image",
    encoding: ImageEncoding.RAW,
    data: image.data,
    width: image.width,
    height: image.height,
    channels: image.channels,
  };
}

function enhanceOp(op: EnhanceOpProto, i: number, field: string): EnhanceOp {
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

const RESIZE_MODES: Record<NonNullable<InfotextControlNetUnit["resizeMode"]>, ControlResizeMode> = {
  "just-resize": ControlResizeMode.JUST_RESIZE,
  "crop-and-resize": ControlResizeMode.CROP_AND_RESIZE,
  "resize-and-fill": ControlResizeMode.RESIZE_AND_FILL,
};

/** An infotext's ControlNet unit as the contract's unit (no image); what the text left out stays unset. */
function controlNetUnitToProto(u: InfotextControlNetUnit): MessageInitShape<typeof ControlNetUnitSchema> {
  return {
    model: u.model,
    preprocessor: {
      name: u.module,
      resolution: u.processorRes ?? 0,
      thresholdA: u.thresholdA ?? 0,
      thresholdB: u.thresholdB ?? 0,
      pixelPerfect: u.pixelPerfect ?? false,
    },
    resizeMode: u.resizeMode ? RESIZE_MODES[u.resizeMode] : ControlResizeMode.UNSPECIFIED,
    ...(u.weight !== undefined ? { conditioningScale: u.weight } : {}),
    ...(u.guidanceStart !== undefined ? { guidanceStart: u.guidanceStart } : {}),
    ...(u.guidanceEnd !== undefined ? { guidanceEnd: u.guidanceEnd } : {}),
  };
}

/** The domain's own error types become the runtime's, so the one error table maps them to status codes. */
function toDomainError(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  if (error instanceof ImageInputError) {
    const reason = error.message.slice(error.field.length + 2);
    return error.code === "too_large"
      ? new ResourceExhaustedError(`${error.field}: ${reason}`)
      : new InvalidArgumentError(error.field, reason);
  }
  return error;
}

async function mapErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw toDomainError(error);
  }
}
