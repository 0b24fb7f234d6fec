import { create, toJson } from "@bufbuild/protobuf";
import {
  TokenizeRequestSchema,
  type TokenizeResponse,
  TokenizeResponseSchema,
} from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import {
  GenerateRequestSchema,
  type GenerateResponse,
  GenerateResponseSchema,
  Stage,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";

/**
 * The messages every transport under test carries, so that they move the same content: a real unary shape
 * (Tokenize: a prompt in, two tokenizers' 77 ids and weights out, ~1 KB) and a real stream shape (Generate's
 * progress events). The servers answer without domain work, so only the transport is measured.
 */
export const TOKENIZE_PATH = "/dmesh.conditioning.v1.ConditioningService/Tokenize";
export const GENERATE_PATH = "/dmesh.inference.v1.InferenceService/Generate";

/** Messages in one server stream. */
export const STREAM_LENGTH = 500;

export const tokenizeRequest = create(TokenizeRequestSchema, {
  model: "tiny-sdxl",
  text: "a lighthouse on a cliff at sunset, (oil painting:1.2), dramatic sky",
  weighted: true,
});

const ids = Array.from({ length: 77 }, (_, i) => (i === 0 ? 49406 : i < 16 ? 320 + i * 97 : 49407));
const weights = Array.from({ length: 77 }, (_, i) => (i > 8 && i < 12 ? 1.2 : 1));

export const tokenizeResponse: TokenizeResponse = create(TokenizeResponseSchema, {
  tokenizers: ["tokenizer", "tokenizer_2"].map((tokenizer) => ({
    tokenizer,
    chunks: [{ ids, weights }],
    tokenCount: 15,
  })),
});

export const generateRequest = create(GenerateRequestSchema, { generationId: "bench-stream" });

export function progressEvent(step: number): GenerateResponse {
  return create(GenerateResponseSchema, {
    event: {
      case: "progress",
      value: {
        stage: Stage.DENOISING,
        step,
        totalSteps: STREAM_LENGTH,
        etaSeconds: 1.5,
        elapsedSeconds: step * 0.01,
      },
    },
  });
}

/** The same content as plain JSON, the way the old JSON-lines transport carried it. */
export const tokenizeRequestJson = toJson(TokenizeRequestSchema, tokenizeRequest);
export const tokenizeResponseJson = toJson(TokenizeResponseSchema, tokenizeResponse);

export function progressEventJson(step: number): object {
  return {
    progress: {
      stage: "STAGE_DENOISING",
      step,
      totalSteps: STREAM_LENGTH,
      etaSeconds: 1.5,
      elapsedSeconds: step * 0.01,
    },
  };
}
