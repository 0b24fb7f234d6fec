import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { DataType } from "@dmesh/contracts/dmesh/common/v1/tensor_pb.js";
import type {
  ConditioningService,
  EncodePromptRequest,
  PreprocessControlRequest,
  TokenizeRequest,
} from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { RunClock } from "@dmesh/onnx";
import { InvalidArgumentError } from "@dmesh/runtime";
import { checkInputImage, LIMITS, validateImageSize } from "@dmesh/spec";
import { decodeControlImage, encodeControlMap } from "./control/control-image.js";
import { type ControlTarget, planControlMap } from "./control/control-map.js";
import type { ControlMapper } from "./control/control-mapper.js";
import { resolvePreprocessor } from "./control/preprocessors.js";
import type { ControlResizeMode as ResizeModeName } from "./control/resize-modes.js";
import type { ModelRegistry } from "./models/model-registry.js";
import { encodePrompts, type PromptSpec } from "./pipeline/prompt-encoder.js";
import { tokenizeWeightedPrompt } from "./tokenizer/index.js";

const RESIZE_MODES: Partial<Record<ControlResizeMode, ResizeModeName>> = {
  [ControlResizeMode.UNSPECIFIED]: "crop-and-resize",
  [ControlResizeMode.JUST_RESIZE]: "just-resize",
  [ControlResizeMode.CROP_AND_RESIZE]: "crop-and-resize",
  [ControlResizeMode.RESIZE_AND_FILL]: "resize-and-fill",
};

const MAP_ENCODINGS: Partial<Record<ImageEncoding, "png" | "raw">> = {
  [ImageEncoding.UNSPECIFIED]: "png",
  [ImageEncoding.PNG]: "png",
  [ImageEncoding.RAW]: "raw",
};

/**
 * ConditioningService: the model's own tokenizers and text encoders, exposed for inspection and reuse, and
 * the ControlNet preprocessors, so that a client can preview a control map.
 */
export class ConditioningHandler implements ServiceImpl<typeof ConditioningService> {
  constructor(
    private readonly models: ModelRegistry,
    private readonly control: ControlMapper,
  ) {}

  async tokenize(req: TokenizeRequest) {
    checkText(req.text, "text");
    const { model, release } = await this.models.acquire(req.model, "model");
    try {
      return {
        tokenizers: model.textEncoders.map((enc) => {
          const text = req.weighted ? req.text : req.text.replace(/([()[\]\\])/g, "\\$1");
          // A PromptSyntaxError names the field "text": the error table answers INVALID_ARGUMENT for it.
          const { chunks, tokenCount } = tokenizeWeightedPrompt(enc.tokenizer, text, { field: "text" });
          return {
            tokenizer: enc.component.name === "text_encoder_2" ? "tokenizer_2" : "tokenizer",
            tokenCount,
            chunks: chunks.map((c) => ({ ids: [...c.ids], weights: [...c.weights] })),
          };
        }),
      };
    } finally {
      release();
    }
  }

  async encodePrompt(req: EncodePromptRequest) {
    checkText(req.prompt, "prompt");
    checkText(req.negativePrompt, "negative_prompt");
    if (req.clipSkip < 0 || req.clipSkip > LIMITS.maxClipSkip)
      throw new InvalidArgumentError("clip_skip", `must be in [0, ${LIMITS.maxClipSkip}]`);
    const { model, release } = await this.models.acquire(req.model, "model");
    try {
      const spec: PromptSpec = {
        prompt: req.prompt,
        negativePrompt: req.negativePrompt,
        prompt2: req.prompt,
        negativePrompt2: req.negativePrompt,
        plainPrompt: req.plainPrompt,
        clipSkip: req.clipSkip,
      };
      const e = await encodePrompts(model, spec, new RunClock());
      const tensor = (data: Float32Array, shape: number[]) => ({
        dtype: DataType.FLOAT32,
        shape,
        data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      });
      return {
        promptEmbeds: tensor(e.positive, [1, e.tokens, e.dim]),
        negativePromptEmbeds: tensor(e.negative, [1, e.tokens, e.dim]),
        ...(e.pooledPositive ? { pooledPromptEmbeds: tensor(e.pooledPositive, [1, e.pooledDim]) } : {}),
        ...(e.pooledNegative
          ? { negativePooledPromptEmbeds: tensor(e.pooledNegative, [1, e.pooledDim]) }
          : {}),
      };
    } finally {
      release();
    }
  }

  async preprocessControl(req: PreprocessControlRequest, ctx: HandlerContext) {
    if (!req.image || req.image.data.length === 0) throw new InvalidArgumentError("image", "is required");
    checkInputImage(req.image, "image");
    const p = req.preprocessor;
    const preprocessor = resolvePreprocessor(
      {
        name: p?.name ?? "",
        resolution: p?.resolution ?? 0,
        thresholdA: p?.thresholdA ?? 0,
        thresholdB: p?.thresholdB ?? 0,
        pixelPerfect: p?.pixelPerfect ?? false,
      },
      "preprocessor",
    );
    const resizeMode = RESIZE_MODES[req.resizeMode];
    if (!resizeMode) throw new InvalidArgumentError("resize_mode", `unknown resize mode ${req.resizeMode}`);
    let target: ControlTarget | undefined;
    if (req.width !== 0 || req.height !== 0) {
      const size = validateImageSize(req.width, req.height, {
        width: "width",
        height: "height",
        size: "width",
      });
      target = { ...size, resizeMode };
    }
    const encoding = MAP_ENCODINGS[req.outputEncoding];
    if (!encoding) throw new InvalidArgumentError("output_encoding", "must be PNG or RAW");
    const image = await decodeControlImage(req.image, "image");
    const plan = planControlMap(image, preprocessor, target, {
      image: "image",
      preprocessor: "preprocessor",
    });
    const { map, resolution } = await this.control.map(image, plan, ctx.signal);
    return { controlMap: await encodeControlMap(map, encoding), resolution };
  }
}

function checkText(text: string, field: string): void {
  if (text.length > LIMITS.maxPromptChars)
    throw new InvalidArgumentError(field, `is longer than ${LIMITS.maxPromptChars} characters`);
}
