import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  PostprocessService,
  type ProcessStreamResponse,
  UpscaleKernel,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { createGrpcTransport, createLogger, loadConfig, type RunningService } from "@dmesh/runtime";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postprocessSettings } from "../../src/config.js";
import { readGenerationParameters } from "../../src/encode/read-generation-parameters.js";
import { startPostprocess } from "../../src/server.js";

const MAX_MESSAGE_BYTES = 1024 * 1024;
let service: RunningService;
let transport: ReturnType<typeof createGrpcTransport>;
let client: ReturnType<typeof createClient<typeof PostprocessService>>;

beforeAll(async () => {
  const env = {
    PORT: "0",
    MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
    MAX_INPUT_BYTES: String(2 * 1024 * 1024),
  };
  service = await startPostprocess(
    loadConfig(postprocessSettings, env, []),
    createLogger("postprocess", "silent"),
  );
  // The client's own limit stays at its default: it is the server that must refuse a large message.
  transport = createGrpcTransport({ address: service.address });
  client = createClient(PostprocessService, transport);
});
afterAll(async () => {
  transport?.close();
  await service?.close();
});

/** Noise over a gradient: PNG cannot squeeze it much, so the output is several messages' worth. */
function noisy(width: number, height: number) {
  const data = new Uint8Array(width * height * 3);
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = ((i / 3) % width) / 8 + (s >>> 24) / 2;
  }
  return { encoding: ImageEncoding.RAW, data, width, height, channels: 3 };
}

const PARAMETERS = { prompt: "a very large lighthouse", steps: 30, seed: 7n, width: 1200, height: 900 };

async function* upload(
  start: Record<string, unknown>,
  bytes: Uint8Array,
  chunk: number,
): AsyncGenerator<{ part: { case: "start"; value: never } | { case: "chunk"; value: Uint8Array } }> {
  yield { part: { case: "start", value: start as never } };
  for (let at = 0; at < bytes.length; at += chunk)
    yield { part: { case: "chunk", value: bytes.subarray(at, at + chunk) } };
}

async function collect(responses: AsyncIterable<ProcessStreamResponse>) {
  const messages: ProcessStreamResponse[] = [];
  for await (const m of responses) messages.push(m);
  return messages;
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return ConnectError.from(
    await call.then(
      () => new Error("the call succeeded"),
      (e: unknown) => e,
    ),
  );
}

describe("ProcessStream: images larger than one message", () => {
  it("takes a raw image in chunks and returns the upscaled PNG in chunks under the message limit", async () => {
    const image = noisy(1200, 900);
    expect(image.data.length).toBeGreaterThan(3 * MAX_MESSAGE_BYTES);
    const request = {
      image: { ...image, data: new Uint8Array(0) },
      parameters: PARAMETERS,
      upscale: { factor: 2, kernel: UpscaleKernel.LANCZOS3 },
      encode: { encoding: ImageEncoding.PNG, embedMetadata: true },
    };
    // The same request in one message is over the server's limit.
    const unary = await failure(client.process({ ...request, image }));
    expect(unary.code).toBe(Code.ResourceExhausted);
    expect(unary.rawMessage).toMatch(/larger than max/i);

    const start = { request, imageBytes: BigInt(image.data.length), chunkBytes: 256 * 1024 };
    const [first, ...rest] = await collect(client.processStream(upload(start, image.data, 200_000)));
    expect(first?.part.case).toBe("result");
    const result = first?.part.case === "result" ? first.part.value : undefined;
    expect([result?.image?.width, result?.image?.height, result?.image?.data.length]).toEqual([
      2400, 1800, 0,
    ]);
    expect(result?.safety?.action).toBe("passed");
    const chunks = rest.map((m) => (m.part.case === "chunk" ? m.part.value : new Uint8Array()));
    expect(chunks.length).toBeGreaterThan(4);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(256 * 1024);
    const png = Buffer.concat(chunks);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 2400, 1800]);
    expect(await readGenerationParameters(png)).toBe(
      "a very large lighthouse\nSteps: 30, Seed: 7, Size: 1200x900",
    );
  });

  it("takes an encoded image in chunks", async () => {
    const jpeg = await sharp(Buffer.from(noisy(1600, 1200).data), {
      raw: { width: 1600, height: 1200, channels: 3 },
    })
      .jpeg({ quality: 95 })
      .toBuffer();
    expect(jpeg.length).toBeGreaterThan(MAX_MESSAGE_BYTES);
    const start = {
      request: {
        image: { encoding: ImageEncoding.JPEG },
        enhance: [{ op: { case: "gamma", value: 1.2 } }],
        encode: { encoding: ImageEncoding.WEBP, quality: 70 },
      },
      imageBytes: BigInt(jpeg.length),
    };
    const [first, ...rest] = await collect(client.processStream(upload(start, jpeg, 64 * 1024)));
    const result = first?.part.case === "result" ? first.part.value : undefined;
    expect([result?.image?.encoding, result?.image?.width, result?.image?.height]).toEqual([
      ImageEncoding.WEBP,
      1600,
      1200,
    ]);
    const webp = Buffer.concat(rest.map((m) => (m.part.case === "chunk" ? m.part.value : new Uint8Array())));
    expect((await sharp(webp).metadata()).width).toBe(1600);
  });

  it("refuses a stream that breaks its own declaration, or an image over the limits before its bytes", async () => {
    const raw = { encoding: ImageEncoding.RAW, width: 100, height: 100, channels: 3 };
    const cases = [
      // Chunks before the start.
      [
        (async function* () {
          yield { part: { case: "chunk" as const, value: new Uint8Array(10) } };
        })(),
        Code.InvalidArgument,
        "start",
      ],
      // Fewer bytes than declared.
      [
        upload({ request: { image: raw }, imageBytes: 30_000n }, new Uint8Array(20_000), 8192),
        Code.InvalidArgument,
        "start.image_bytes",
      ],
      // More bytes than declared.
      [
        upload({ request: { image: raw }, imageBytes: 30_000n }, new Uint8Array(40_000), 8192),
        Code.InvalidArgument,
        "start.image_bytes",
      ],
      // A raw size that does not match the declared bytes.
      [
        upload({ request: { image: raw }, imageBytes: 20_000n }, new Uint8Array(20_000), 8192),
        Code.InvalidArgument,
        "start.image_bytes",
      ],
      // Bytes in the start message instead of chunks.
      [
        upload(
          { request: { image: { ...raw, data: new Uint8Array(30_000) } }, imageBytes: 30_000n },
          new Uint8Array(0),
          1,
        ),
        Code.InvalidArgument,
        "start.request.image.data",
      ],
      // An encoded image larger than MAX_INPUT_BYTES: refused on the declaration alone (no byte is sent).
      [
        upload(
          { request: { image: { encoding: ImageEncoding.PNG } }, imageBytes: 3n << 20n },
          new Uint8Array(0),
          1,
        ),
        Code.ResourceExhausted,
        undefined,
      ],
    ] as const;
    for (const [input, code, field] of cases) {
      const err = await failure(collect(client.processStream(input as never)));
      expect([err.code, err.metadata.get("dmesh-field") ?? undefined], err.rawMessage).toEqual([code, field]);
    }
    const ok = await collect(
      client.processStream(
        upload({ request: { image: raw }, imageBytes: 30_000n }, new Uint8Array(30_000), 8192),
      ),
    );
    expect(ok[0]?.part.case).toBe("result");
  });
});
