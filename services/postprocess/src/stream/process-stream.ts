import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  ProcessStreamRequest,
  ProcessStreamResponseSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { declaredImageOf, encodedImageMessage } from "../messages/image-messages.js";
import { processPlanOf } from "../messages/plan-messages.js";
import { processResponseMessage } from "../messages/result-messages.js";
import type { Postprocessor, ProcessResult } from "../process/postprocessor.js";
import { collectBytes, splitBytes } from "./byte-chunks.js";

/** Output chunk sizes a ProcessStream may ask for, and the default. */
const MIN_CHUNK_BYTES = 4 * 1024;
const MAX_CHUNK_BYTES = 4 * 1024 * 1024;
const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/** Room for a chunk message's own framing within the message limit. */
const CHUNK_FRAMING_BYTES = 64;

/**
 * The ProcessStream protocol, for images over the message limit: the caller sends a start (the Process
 * request with an empty image, the image's byte length, the output chunk size), then the image's bytes in
 * chunks; the answer is the result (its image without bytes), then the encoded bytes in chunks, each under
 * `maxMessageBytes`.
 */
export async function* processStream(
  requests: AsyncIterable<ProcessStreamRequest>,
  postprocessor: Postprocessor,
  maxMessageBytes: number,
  signal: AbortSignal,
): AsyncGenerator<MessageInitShape<typeof ProcessStreamResponseSchema>> {
  const started = performance.now();
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
  const chunkBytes = outputChunkBytes(start.chunkBytes, maxMessageBytes);
  const plan = processPlanOf(req, "start.request.", postprocessor);
  const image = req.image;
  if (image.data.length > 0) {
    throw new InvalidArgumentError("start.request.image.data", "must be empty: the bytes follow as chunks");
  }
  const byteLength = Number(start.imageBytes);
  if (byteLength === 0) throw new InvalidArgumentError("start.image_bytes", "is required");
  const receive = () => collectBytes(chunksOf(parts), byteLength, "start.image_bytes");
  const result: ProcessResult = await postprocessor.withDeclaredImage(
    declaredImageOf(image, byteLength, "start.image_bytes"),
    receive,
    "start.request.image",
    plan.upscale,
    signal,
    (decoded) => postprocessor.process(decoded, plan, signal),
  );
  const response = processResponseMessage(encodedImageMessage(result.image, false), result.safety, started);
  yield { part: { case: "result", value: response } };
  for (const chunk of splitBytes(result.image.bytes, chunkBytes))
    yield { part: { case: "chunk", value: chunk } };
}

function outputChunkBytes(requested: number, maxMessageBytes: number): number {
  if (requested !== 0 && (requested < MIN_CHUNK_BYTES || requested > MAX_CHUNK_BYTES)) {
    throw new InvalidArgumentError(
      "start.chunk_bytes",
      `must be from ${MIN_CHUNK_BYTES} to ${MAX_CHUNK_BYTES}`,
    );
  }
  return Math.min(requested || DEFAULT_CHUNK_BYTES, maxMessageBytes - CHUNK_FRAMING_BYTES);
}

/** The chunks after the first message; another start is a client error. */
async function* chunksOf(parts: AsyncIterator<ProcessStreamRequest>): AsyncGenerator<Uint8Array> {
  for (let next = await parts.next(); !next.done; next = await parts.next()) {
    if (next.value.part.case !== "chunk")
      throw new InvalidArgumentError("chunk", "only chunks may follow the start");
    yield next.value.part.value;
  }
}
