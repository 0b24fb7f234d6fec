/**
 * A PostprocessService that does no image work: Upscale and Encode answer at once with images of the sizes
 * given (the real service's outputs), served by our runtime as every service is. Timing it shows what moving
 * the pixels through gRPC costs on its own, the floor under the service's pixels-in-messages path.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { createLogger, startGrpcService } from "@dmesh/runtime";

const [upscaledSide, encodedBytes] = process.argv.slice(2).map(Number);
if (!upscaledSide || !encodedBytes) throw new Error("usage: byte-mover-main <upscaled side> <encoded bytes>");
const upscaled = {
  encoding: ImageEncoding.RAW,
  width: upscaledSide,
  height: upscaledSide,
  channels: 3,
  data: new Uint8Array(upscaledSide * upscaledSide * 3),
};
const encoded = { encoding: ImageEncoding.PNG, data: new Uint8Array(encodedBytes) };
const impl: Partial<ServiceImpl<typeof PostprocessService>> = {
  upscale: () => ({ image: upscaled }),
  encode: () => ({ image: encoded }),
};

const service = await startGrpcService({
  name: "byte-mover",
  host: "127.0.0.1",
  port: 0,
  logger: createLogger("byte-mover", "info"),
  maxMessageBytes: 64 * 1024 * 1024,
  shutdownGraceMs: 1000,
  registrations: [{ service: PostprocessService, impl }],
});
// Never outlive the bench that started us.
process.once("disconnect", () => process.exit(0));
process.send?.({ port: service.port });
