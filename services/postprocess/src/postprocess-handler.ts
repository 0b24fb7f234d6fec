import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  CheckSafetyRequest,
  EncodeRequest,
  EnhanceRequest,
  PostprocessService,
  ProcessRequest,
  ProcessStreamRequest,
  ReadMetadataRequest,
  UpscaleRequest,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime";
import { readGenerationParameters } from "./encode/read-generation-parameters.js";
import { enhanceImage } from "./enhance/enhance-image.js";
import { parametersFromInfotext } from "./infotext/parameters-from-infotext.js";
import { parseInfotext } from "./infotext/parse-infotext.js";
import { encodedImageMessage, rawImageMessage } from "./messages/image-messages.js";
import { parametersMessage } from "./messages/parameters-messages.js";
import {
  encodePlanOf,
  enhanceOpOf,
  policyNameOf,
  processPlanOf,
  upscalePlanOf,
} from "./messages/plan-messages.js";
import { processResponseMessage, verdictMessage } from "./messages/result-messages.js";
import type { Postprocessor } from "./process/postprocessor.js";
import type { SharedMemoryIo } from "./shared-memory/shared-memory-io.js";
import { processStream } from "./stream/process-stream.js";

/**
 * PostprocessService transport: messages to plans, the domain's work, results to messages. Errors travel as
 * thrown: the runtime's one error table maps them (the domain registers its own types there).
 */
export class PostprocessHandler implements ServiceImpl<typeof PostprocessService> {
  constructor(
    private readonly postprocessor: Postprocessor,
    /** The server's message limit: ProcessStream's output chunks stay under it. */
    private readonly maxMessageBytes: number,
    private readonly images: SharedMemoryIo,
  ) {}

  async process(req: ProcessRequest, ctx: HandlerContext) {
    const started = performance.now();
    const plan = processPlanOf(req, "", this.postprocessor);
    const output = await this.images.outputRegion(req.outputSharedMemory);
    const result = await this.images.withInput(req.image, plan.upscale, ctx.signal, (image) =>
      this.postprocessor.process(image, plan, ctx.signal),
    );
    const image = await this.images.deliver(encodedImageMessage(result.image, true), output);
    return processResponseMessage(image, result.safety, started);
  }

  /** Process with the input and the output in chunks: for images over the message limit. */
  processStream(requests: AsyncIterable<ProcessStreamRequest>, ctx: HandlerContext) {
    return processStream(requests, this.postprocessor, this.maxMessageBytes, ctx.signal);
  }

  async upscale(req: UpscaleRequest, ctx: HandlerContext) {
    if (!req.upscale) throw new InvalidArgumentError("upscale", "is required");
    const plan = upscalePlanOf(req.upscale);
    this.postprocessor.checkUpscale(plan);
    const output = await this.images.outputRegion(req.outputSharedMemory);
    const image = await this.images.withInput(req.image, plan, ctx.signal, (i) =>
      this.postprocessor.upscale(i, plan, ctx.signal),
    );
    return { image: await this.images.deliver(rawImageMessage(image), output) };
  }

  async enhance(req: EnhanceRequest, ctx: HandlerContext) {
    if (req.ops.length === 0) throw new InvalidArgumentError("ops", "needs at least one operation");
    const ops = req.ops.map((op, i) => enhanceOpOf(op, i, "ops"));
    const output = await this.images.outputRegion(req.outputSharedMemory);
    const image = await this.images.withInput(req.image, undefined, ctx.signal, (i) =>
      enhanceImage(i, ops, ctx.signal),
    );
    return { image: await this.images.deliver(rawImageMessage(image), output) };
  }

  /** Reports the verdict; a rejecting policy answers action "rejected" here (Process fails instead). */
  async checkSafety(req: CheckSafetyRequest, ctx: HandlerContext) {
    const safety = this.postprocessor.safety;
    const policy = safety.resolvePolicy(policyNameOf(req.policy, "policy"), req.tenant, "policy");
    return this.images.withInput(req.image, undefined, ctx.signal, async (image) => {
      const checked = await safety.apply(image, policy, ctx.signal);
      return {
        result: verdictMessage(checked.verdict),
        ...(checked.image !== image ? { image: rawImageMessage(checked.image) } : {}),
      };
    });
  }

  async encode(req: EncodeRequest, ctx: HandlerContext) {
    const plan = encodePlanOf(req.encode, req.parameters, "encode");
    const output = await this.images.outputRegion(req.outputSharedMemory);
    const encoded = await this.images.withInput(req.image, undefined, ctx.signal, (i) =>
      this.postprocessor.encode(i, plan),
    );
    return { image: await this.images.deliver(encodedImageMessage(encoded, true), output) };
  }

  async readMetadata(req: ReadMetadataRequest) {
    if (req.image?.sharedMemory)
      throw new InvalidArgumentError("image.shared_memory", "is not read by ReadMetadata: send data");
    if (!req.image || req.image.data.length === 0) throw new InvalidArgumentError("image", "is required");
    const infotext = (await readGenerationParameters(req.image.data, "image.data")) ?? "";
    if (!infotext) return { infotext };
    return { infotext, parameters: parametersMessage(parametersFromInfotext(parseInfotext(infotext))) };
  }
}
