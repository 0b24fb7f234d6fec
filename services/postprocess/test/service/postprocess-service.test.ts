import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  PostprocessService,
  SafetyPolicy,
  UpscaleKernel,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { createGrpcTransport, createLogger, loadConfig, type RunningService } from "@dmesh/runtime";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postprocessSettings } from "../../src/config.js";
import { startPostprocess } from "../../src/server.js";
import { pngHeaderOnly } from "../support/test-images.js";

let service: RunningService;
let transport: ReturnType<typeof createGrpcTransport>;
let client: ReturnType<typeof createClient<typeof PostprocessService>>;

beforeAll(async () => {
  const config = loadConfig(postprocessSettings, { PORT: "0", MAX_INPUT_PIXELS: String(4096 * 4096) }, []);
  service = await startPostprocess(config, createLogger("postprocess", "silent"));
  transport = createGrpcTransport({ address: service.address });
  client = createClient(PostprocessService, transport);
});
afterAll(async () => {
  transport.close();
  await service.close();
});

function gradient(width: number, height: number) {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([i % 256, (i * 7) % 256, 128], i * 3);
  return { encoding: ImageEncoding.RAW, data, width, height, channels: 3 };
}

const PARAMETERS = {
  prompt: "a lighthouse, (oil:1.2)",
  negativePrompt: "blurry",
  steps: 20,
  sampler: "DPM++ 2M",
  scheduleType: "Karras",
  cfgScale: 7,
  seed: 42n,
  width: 64,
  height: 48,
  model: "tiny-sdxl",
};

describe("PostprocessService over gRPC", () => {
  it("encodes a PNG that carries the parameters exactly as AUTOMATIC1111 writes them, and reads them back", async () => {
    const { image } = await client.process({
      image: gradient(64, 48),
      parameters: PARAMETERS,
      safety: SafetyPolicy.PASS,
      encode: { encoding: ImageEncoding.PNG, embedMetadata: true },
    });
    expect(image?.encoding).toBe(ImageEncoding.PNG);
    const meta = await sharp(image?.data).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([64, 48, "png"]);
    const read = await client.readMetadata({ image });
    expect(read.infotext).toBe(
      "a lighthouse, (oil:1.2)\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 64x48, Model: tiny-sdxl",
    );
    expect(read.parameters?.seed).toBe(42n);
    expect(read.parameters?.sampler).toBe("DPM++ 2M");
  });

  it("upscales 2x with a sharp kernel and enhances", async () => {
    const up = await client.upscale({
      image: gradient(32, 16),
      upscale: { factor: 2, kernel: UpscaleKernel.LANCZOS3 },
    });
    expect([up.image?.width, up.image?.height, up.image?.data.length]).toEqual([64, 32, 64 * 32 * 3]);
    const enhanced = await client.enhance({
      image: up.image,
      ops: [{ op: { case: "sharpenSigma", value: 1 } }, { op: { case: "gamma", value: 1.2 } }],
    });
    expect(enhanced.image?.data.length).toBe(64 * 32 * 3);
    expect(Buffer.from(enhanced.image?.data ?? []).equals(Buffer.from(up.image?.data ?? []))).toBe(false);
  });

  it("writes JPEG and WebP with the infotext in EXIF", async () => {
    for (const encoding of [ImageEncoding.JPEG, ImageEncoding.WEBP]) {
      const { image } = await client.encode({
        image: gradient(32, 32),
        encode: { encoding, quality: 90, embedMetadata: true },
        parameters: PARAMETERS,
      });
      const read = await client.readMetadata({ image });
      expect(read.infotext, ImageEncoding[encoding]).toContain("Seed: 42");
    }
  });

  it("refuses corrupt images, bad dimensions and decompression bombs by field, and keeps serving", async () => {
    const cases = [
      [
        { image: { encoding: ImageEncoding.PNG, data: new Uint8Array([0x89, 0x50, 1, 2, 3]) } },
        Code.InvalidArgument,
        "image.data",
      ],
      [
        {
          image: { encoding: ImageEncoding.RAW, data: new Uint8Array(10), width: 4, height: 4, channels: 3 },
        },
        Code.InvalidArgument,
        "image",
      ],
      [{}, Code.InvalidArgument, "image"],
    ] as const;
    for (const [req, code, field] of cases) {
      const err = ConnectError.from(await client.encode(req).catch((e: unknown) => e));
      expect(err.code).toBe(code);
      expect(err.metadata.get("dmesh-field") ?? err.rawMessage).toContain(field);
    }
    // A PNG whose header claims 30000 x 30000 (2.7 GB of RGB): refused from the header, before any decoding.
    const bomb = pngHeaderOnly(30_000, 30_000);
    const err = ConnectError.from(
      await client.encode({ image: { encoding: ImageEncoding.PNG, data: bomb } }).catch((e: unknown) => e),
    );
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toContain("image.data");
    const ok = await client.encode({ image: gradient(8, 8) });
    expect(ok.image?.data.length).toBeGreaterThan(0);
  });

  it("says so when a safety policy needs a classifier it does not have", async () => {
    const err = ConnectError.from(
      await client.checkSafety({ image: gradient(8, 8), policy: SafetyPolicy.BLUR }).catch((e: unknown) => e),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.metadata.get("dmesh-field")).toBe("policy");
  });
});
