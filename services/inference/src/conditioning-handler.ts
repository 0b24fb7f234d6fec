import type { ServiceImpl } from "@connectrpc/connect";
import { DataType } from "@dmesh/contracts/dmesh/common/v1/tensor_pb.js";
import type {
  ConditioningService,
  EncodePromptRequest,
  TokenizeRequest,
} from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { RunClock } from "@dmesh/onnx";
import { InvalidArgumentError } from "@dmesh/runtime";
import { LIMITS } from "@dmesh/spec";
import type { ModelRegistry } from "./models/model-registry.js";
import { encodePrompts, type PromptSpec } from "./pipeline/prompt-encoder.js";
import { PromptSyntaxError, tokenizeWeightedPrompt } from "./tokenizer/index.js";

/** ConditioningService: the model's own tokenizers and text encoders, exposed for inspection and reuse. */
export class ConditioningHandler implements ServiceImpl<typeof ConditioningService> {
  constructor(private readonly models: ModelRegistry) {}

  async tokenize(req: TokenizeRequest) {
    checkText(req.text, "text");
    const { model, release } = await this.models.acquire(req.model, "model");
    try {
      return {
        tokenizers: model.textEncoders.map((enc) => {
          const text = req.weighted ? req.text : req.text.replace(/([()[\]\\])/g, "\\$1");
          try {
            const { chunks, tokenCount } = tokenizeWeightedPrompt(enc.tokenizer, text, { field: "text" });
            return {
              tokenizer: enc.component.name === "text_encoder_2" ? "tokenizer_2" : "tokenizer",
              tokenCount,
              chunks: chunks.map((c) => ({ ids: [...c.ids], weights: [...c.weights] })),
            };
          } catch (err) {
            if (err instanceof PromptSyntaxError) throw new InvalidArgumentError("text", err.message);
            throw err;
          }
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
}

function checkText(text: string, field: string): void {
  if (text.length > LIMITS.maxPromptChars)
    throw new InvalidArgumentError(field, `is longer than ${LIMITS.maxPromptChars} characters`);
}
