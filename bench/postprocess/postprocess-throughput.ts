import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { ImageEncoding, ImageSchema } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  EncodeRequestSchema,
  PostprocessService,
  UpscaleKernel,
  UpscaleRequestSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import sharp from "sharp";
import { type BenchResult, versus } from "../bench-result.js";
import { startChildService } from "../child-service.js";
import { callsPerSecond, interleavedThroughput, type Tally } from "../measure.js";
import { benchImage } from "./bench-image.js";

const SERVICE_ENTRY = fileURLToPath(new URL("./postprocess-service-main.js", import.meta.url));
const SIZE = 1024;
// As many images in flight as this machine has cores, through the service and directly alike.
const IN_FLIGHT = 2;

/**
 * Images per second through the postprocess service (its own process, called over our gRPC transport with
 * the pixels in the message, as the orchestrator calls it) against sharp called directly in this process.
 */
export async function benchPostprocess(): Promise<BenchResult[]> {
  const logDir = mkdtempSync(join(tmpdir(), "dmesh-bench-postprocess-"));
  const service = await startChildService(SERVICE_ENTRY, [], join(logDir, "postprocess.log"), {
    LOG_LEVEL: "info",
  });
  const transport = createGrpcTransport({ address: service.address });
  try {
    const client = createClient(PostprocessService, transport);
    const pixels = benchImage(SIZE);
    const raw = { width: SIZE, height: SIZE, channels: 3 as const };
    const image = create(ImageSchema, { encoding: ImageEncoding.RAW, data: pixels, ...raw });
    const upscaleRequest = create(UpscaleRequestSchema, {
      image,
      upscale: { factor: 2, kernel: UpscaleKernel.LANCZOS3 },
    });
    const encodeRequest = create(EncodeRequestSchema, {
      image,
      encode: { encoding: ImageEncoding.PNG, embedMetadata: true },
      parameters: {
        prompt: "a lighthouse on a cliff at sunset, oil painting",
        negativePrompt: "blurry",
        steps: 20,
        sampler: "Euler a",
        cfgScale: 7,
        seed: 42n,
        width: SIZE,
        height: SIZE,
        model: "tiny-sdxl",
      },
    });

    const ops = {
      upscale: {
        label: `${SIZE}² → ${SIZE * 2}² lanczos3`,
        service: async () => expectWidth((await client.upscale(upscaleRequest)).image?.width, SIZE * 2),
        direct: () =>
          sharp(pixels, { raw })
            .resize(SIZE * 2, SIZE * 2, { kernel: "lanczos3", fit: "fill" })
            .raw()
            .toBuffer(),
      },
      encode: {
        label: `${SIZE}² PNG encode with infotext`,
        service: async () => expectWidth((await client.encode(encodeRequest)).image?.width, SIZE),
        direct: () => sharp(pixels, { raw }).png({ compressionLevel: 6 }).toBuffer(),
      },
    };
    const results: BenchResult[] = [];
    for (const op of Object.values(ops)) {
      const [viaService, direct] = (await interleavedThroughput([{ call: op.service }, { call: op.direct }], {
        inFlight: IN_FLIGHT,
        windowMs: 2500,
        windows: 2,
      })) as [Tally, Tally];
      results.push(
        versus(
          `postprocess: ${op.label} via the service`,
          callsPerSecond(viaService),
          "images/s",
          { name: "sharp called directly", value: callsPerSecond(direct) },
          { min: 0.9 },
        ),
      );
    }
    return results;
  } finally {
    transport.close();
    await service.stop();
    rmSync(logDir, { recursive: true, force: true });
  }
}

function expectWidth(actual: number | undefined, expected: number): void {
  if (actual !== expected)
    throw new Error(`postprocess answered an image ${actual} wide, expected ${expected}`);
}
