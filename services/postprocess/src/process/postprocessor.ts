import { FailedPreconditionError, InvalidArgumentError } from "@dmesh/runtime/errors";
import { inSpan } from "@dmesh/runtime/tracing";
import { type EncodedImage, encodeImage, type OutputFormat } from "../encode/encode-image.js";
import { enhanceImage } from "../enhance/enhance-image.js";
import type { EnhanceOp } from "../enhance/enhance-op.js";
import {
  checkRawSize,
  decodeImageSource,
  type ImageSize,
  type ImageSource,
  inspectImageSource,
} from "../image/image-source.js";
import { checkRawImage, type RawImage } from "../image/raw-image.js";
import { formatInfotext } from "../infotext/format-infotext.js";
import type { GenerationParameters } from "../infotext/generation-parameters.js";
import { ImageInputError } from "../limits/image-input-error.js";
import type { ImageLimits } from "../limits/image-limits.js";
import type { PixelBudget, PixelLease } from "../limits/pixel-budget.js";
import { countImage } from "../postprocess-metrics.js";
import { type ResizeKernel, resizeImage } from "../resize/resize-image.js";
import type { SafetyPolicyName } from "../safety/safety-policy.js";
import { SafetyStage, type SafetyVerdict } from "../safety/safety-stage.js";
import type { ModelUpscaler } from "../upscale/model-upscaler.js";
import { checkIntegerInRange } from "../validation/check-number.js";

export interface UpscalePlan {
  /** 1, 2 or 4; 0 with a model = the model's own scale. */
  readonly factor: number;
  readonly kernel: ResizeKernel | "model";
  /** With kernel "model": a model directory name. */
  readonly model: string;
}

export interface EncodePlan {
  readonly format: OutputFormat;
  readonly quality?: number;
  /** Embedded as A1111 infotext when set, with the safety verdict added. */
  readonly parameters?: GenerationParameters;
}

export interface ProcessPlan {
  /** Resolved by `safety.resolvePolicy`. */
  readonly safety: SafetyPolicyName;
  readonly upscale?: UpscalePlan;
  readonly enhance: readonly EnhanceOp[];
  readonly encode: EncodePlan;
}

export interface ProcessResult {
  readonly image: EncodedImage;
  readonly safety: SafetyVerdict;
}

/**
 * An image known by what a request declares before its bytes are read (chunks still to arrive, a
 * shared-memory region): `sizeField` names the request field that declares `byteLength`.
 */
export type DeclaredImage =
  | { readonly kind: "encoded"; readonly byteLength: number; readonly sizeField: string }
  | {
      readonly kind: "raw";
      readonly byteLength: number;
      readonly sizeField: string;
      readonly width: number;
      readonly height: number;
      readonly channels: number;
    };

export interface PostprocessorOptions {
  readonly limits: ImageLimits;
  readonly maxOutputPixels: number;
  readonly budget: PixelBudget;
  readonly safety: SafetyStage;
  /** Absent when no UPSCALE_MODELS_DIR is configured. */
  readonly upscaler?: ModelUpscaler;
}

/**
 * The postprocess instructor: admits each request into the pixel budget by the size its header declares
 * (before a pixel is decoded), then runs safety → upscale → enhance → encode on it. Transport-free: plain
 * inputs, an AbortSignal, domain errors.
 */
export class Postprocessor {
  readonly safety: SafetyStage;

  constructor(private readonly options: PostprocessorOptions) {
    this.safety = options.safety;
  }

  /**
   * Sizes the request from the source without decoding, waits for its share of the pixel budget, decodes
   * and runs `work`, releasing the share when `work` is done.
   */
  async withImage<T>(
    source: ImageSource,
    field: string,
    upscale: UpscalePlan | undefined,
    signal: AbortSignal | undefined,
    work: (image: RawImage) => Promise<T>,
  ): Promise<T> {
    const size = await inspectImageSource(source, field, this.options.limits);
    const lease = await this.admit(size, upscale, signal);
    try {
      return await work(await decodeImageSource(source, field, this.options.limits));
    } finally {
      lease.release();
    }
  }

  /**
   * `withImage` for an image whose bytes are not read yet (`receive` reads them). A raw image is admitted
   * on its declared size before its bytes are read, so a request waiting for the budget holds no pixels
   * (and flow control stops a streaming sender); an encoded one is admitted from its header once its bytes
   * are in, which MAX_INPUT_BYTES bounds, and is refused on its declared size before any byte is read.
   */
  async withDeclaredImage<T>(
    declared: DeclaredImage,
    receive: () => Promise<Uint8Array>,
    field: string,
    upscale: UpscalePlan | undefined,
    signal: AbortSignal | undefined,
    work: (image: RawImage) => Promise<T>,
  ): Promise<T> {
    const { limits } = this.options;
    if (declared.kind === "encoded") {
      if (declared.byteLength > limits.maxBytes) {
        throw new ImageInputError(
          "too_large",
          declared.sizeField,
          `is ${declared.byteLength} bytes; the limit is ${limits.maxBytes}`,
        );
      }
      return this.withImage({ kind: "encoded", bytes: await receive() }, field, upscale, signal, work);
    }
    const { width, height, channels } = declared;
    if (channels !== 3 && channels !== 4)
      throw new InvalidArgumentError(`${field}.channels`, "must be 3 or 4");
    checkIntegerInRange(`${field}.width`, width, 1, limits.maxWidth);
    checkIntegerInRange(`${field}.height`, height, 1, limits.maxHeight);
    checkRawSize(declared, field, limits);
    if (declared.byteLength !== width * height * channels) {
      throw new InvalidArgumentError(
        declared.sizeField,
        `declares ${declared.byteLength} bytes but ${width}x${height}x${channels} needs ${width * height * channels}`,
      );
    }
    const lease = await this.admit(declared, upscale, signal);
    try {
      return await work(checkRawImage({ data: await receive(), width, height, channels }, field));
    } finally {
      lease.release();
    }
  }

  /**
   * Waits for the pixels a request of this size will hold: its input plus the largest image it makes.
   * A declared raw image is admitted this way before its bytes are read, so waiting requests hold no pixels.
   */
  async admit(size: ImageSize, upscale: UpscalePlan | undefined, signal?: AbortSignal): Promise<PixelLease> {
    const input = size.width * size.height;
    const largest = upscale ? input * (await this.largestUpscaleRatio(upscale)) : input;
    return this.options.budget.acquire(input + largest, signal);
  }

  /** Refuses a plan this service cannot run, before any work. */
  checkUpscale(plan: UpscalePlan): void {
    if (plan.kernel !== "model") {
      if (![1, 2, 4].includes(plan.factor))
        throw new InvalidArgumentError("upscale.factor", "must be 1, 2 or 4");
      return;
    }
    this.modelUpscaler();
    if (!plan.model) throw new InvalidArgumentError("upscale.model", "is required with the model kernel");
    if (![0, 1, 2, 4].includes(plan.factor))
      throw new InvalidArgumentError("upscale.factor", "must be 0 (the model's scale), 1, 2 or 4");
  }

  async upscale(image: RawImage, plan: UpscalePlan, signal?: AbortSignal): Promise<RawImage> {
    this.checkUpscale(plan);
    countImage("upscale");
    const { maxOutputPixels } = this.options;
    if (plan.factor === 1) return image;
    if (plan.kernel !== "model")
      return resizeImage(image, { scale: plan.factor, kernel: plan.kernel, maxOutputPixels });
    // One span for the model's runs over every tile of the image.
    return inSpan("model run upscale", { "dmesh.model": plan.model }, () =>
      this.modelUpscaler().upscale(image, {
        model: plan.model,
        factor: plan.factor,
        maxOutputPixels,
        ...(signal ? { signal } : {}),
      }),
    );
  }

  async process(image: RawImage, plan: ProcessPlan, signal?: AbortSignal): Promise<ProcessResult> {
    const checked = await this.safety.apply(image, plan.safety, signal);
    SafetyStage.throwIfRejected(checked.verdict, "image");
    let current = checked.image;
    if (plan.upscale) current = await this.upscale(current, plan.upscale, signal);
    signal?.throwIfAborted();
    if (plan.enhance.length > 0) current = await enhanceImage(current, plan.enhance, signal);
    signal?.throwIfAborted();
    const encoded = await this.encode(current, plan.encode, SafetyStage.infotextFields(checked.verdict));
    return { image: encoded, safety: checked.verdict };
  }

  /** Encodes; `extra` infotext fields (the safety record) are added to the parameters, replacing same keys. */
  encode(image: RawImage, plan: EncodePlan, extra: Record<string, string> = {}): Promise<EncodedImage> {
    countImage("encode");
    const { parameters } = plan;
    const infotext = parameters
      ? formatInfotext({ ...parameters, extra: { ...parameters.extra, ...extra } })
      : undefined;
    return encodeImage(image, {
      format: plan.format,
      ...(plan.quality !== undefined ? { quality: plan.quality } : {}),
      ...(infotext !== undefined ? { infotext } : {}),
    });
  }

  /** Output pixels over input pixels at the largest image the upscale makes (a model's passes included). */
  private async largestUpscaleRatio(plan: UpscalePlan): Promise<number> {
    this.checkUpscale(plan);
    if (plan.factor === 1 || plan.kernel !== "model") return plan.factor * plan.factor;
    return (await this.modelUpscaler().peakScale(plan.model, plan.factor)) ** 2;
  }

  private modelUpscaler(): ModelUpscaler {
    if (this.options.upscaler) return this.options.upscaler;
    throw new FailedPreconditionError(
      "model-based upscaling is not configured on this service (UPSCALE_MODELS_DIR)",
      "upscale.kernel",
    );
  }
}
