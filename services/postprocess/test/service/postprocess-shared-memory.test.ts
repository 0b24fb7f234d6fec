import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { PostprocessService, UpscaleKernel } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { createGrpcTransport, createLogger, loadConfig, type RunningService } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postprocessSettings } from "../../src/config.js";
import { startPostprocess } from "../../src/server.js";
import { gradientImage, pngHeaderOnly } from "../support/test-images.js";

type Client = ReturnType<typeof createClient<typeof PostprocessService>>;

const MAX_INPUT_BYTES = 1024 * 1024;
let root: string;
let dir: string;
let outside: string;
let outsideBytes: Buffer;
const services: { service: RunningService; transport: ReturnType<typeof createGrpcTransport> }[] = [];
let client: Client;
let clientWithout: Client;

async function start(env: Record<string, string>): Promise<Client> {
  const config = loadConfig(postprocessSettings, { PORT: "0", ...env }, []);
  const service = await startPostprocess(config, createLogger("postprocess", "silent"));
  const transport = createGrpcTransport({ address: service.address });
  services.push({ service, transport });
  return createClient(PostprocessService, transport);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "dmesh-shm-test-"));
  dir = join(root, "regions");
  // A file beside the directory that no request may read or write, through a name or a link.
  outside = join(root, "outside.bin");
  outsideBytes = Buffer.from("not a region: nothing may touch this file");
  writeFileSync(outside, outsideBytes);
  // The service makes the directory itself.
  client = await start({
    SHARED_MEMORY_DIR: dir,
    MAX_INPUT_BYTES: String(MAX_INPUT_BYTES),
    MAX_INPUT_PIXELS: String(1024 * 1024),
  });
  clientWithout = await start({});
});
afterAll(async () => {
  for (const { service, transport } of services) {
    transport.close();
    await service.close();
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A region file of `size` zero bytes with `bytes` at `offset`. */
function region(name: string, size: number, bytes: Uint8Array = new Uint8Array(0), offset = 0): string {
  const path = join(dir, name);
  writeFileSync(path, new Uint8Array(size));
  if (bytes.length > 0) {
    const whole = readFileSync(path);
    whole.set(bytes, offset);
    writeFileSync(path, whole);
  }
  return path;
}

function slice(path: string, offset: bigint, byteSize: bigint): Buffer {
  return readFileSync(path).subarray(Number(offset), Number(offset + byteSize));
}

function rawMessage(image: ReturnType<typeof gradientImage>) {
  return { encoding: ImageEncoding.RAW, ...image };
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return ConnectError.from(
    await call.then(
      () => "no error",
      (e: unknown) => e,
    ),
  );
}

const PARAMETERS = {
  prompt: "a lighthouse",
  steps: 20,
  sampler: "Euler a",
  seed: 42n,
  width: 64,
  height: 48,
};

describe("shared-memory images", () => {
  it("upscales and enhances from one region into another, byte for byte as with the pixels in messages", async () => {
    const input = gradientImage(64, 48);
    const upscale = { factor: 2, kernel: UpscaleKernel.LANCZOS3 };
    const inMessage = await client.upscale({ image: rawMessage(input), upscale });

    // Input and output at offsets inside larger regions: nothing outside the named slices moves.
    const inPath = region("up-in", 20_000, input.data, 512);
    const outPath = region("up-out", 64 * 1024);
    const viaRegions = await client.upscale({
      image: {
        encoding: ImageEncoding.RAW,
        width: 64,
        height: 48,
        channels: 3,
        sharedMemory: { region: "up-in", offset: 512n, byteSize: BigInt(input.data.length) },
      },
      upscale,
      outputSharedMemory: { region: "up-out", offset: 4096n, byteSize: 60_000n },
    });
    const image = viaRegions.image;
    expect([image?.width, image?.height, image?.channels, image?.data.length]).toEqual([128, 96, 3, 0]);
    expect(image?.sharedMemory).toMatchObject({ region: "up-out", offset: 4096n, byteSize: 128n * 96n * 3n });
    const out = readFileSync(outPath);
    expect(out.subarray(4096, 4096 + 128 * 96 * 3).equals(Buffer.from(inMessage.image?.data ?? []))).toBe(
      true,
    );
    expect(out.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    expect(out.subarray(4096 + 128 * 96 * 3).every((b) => b === 0)).toBe(true);
    expect(slice(inPath, 512n, BigInt(input.data.length)).equals(Buffer.from(input.data))).toBe(true);

    // The response's reference is a valid input for the next call, in place.
    const ops = [{ op: { case: "sharpenSigma" as const, value: 1 } }];
    const enhancedInMessage = await client.enhance({ image: inMessage.image, ops });
    const enhanced = await client.enhance({
      image,
      ops,
      outputSharedMemory: { region: "up-out", offset: 4096n, byteSize: 60_000n },
    });
    expect(enhanced.image?.sharedMemory?.byteSize).toBe(128n * 96n * 3n);
    expect(
      slice(outPath, 4096n, 128n * 96n * 3n).equals(Buffer.from(enhancedInMessage.image?.data ?? [])),
    ).toBe(true);
  });

  it("encodes a PNG with infotext into a region, and runs Process from an encoded input there", async () => {
    const input = gradientImage(64, 48);
    const encode = { encoding: ImageEncoding.PNG, embedMetadata: true };
    const inMessage = await client.encode({ image: rawMessage(input), encode, parameters: PARAMETERS });
    region("enc-in", input.data.length, input.data);
    const outPath = region("enc-out", 64 * 1024);
    const viaRegions = await client.encode({
      image: {
        encoding: ImageEncoding.RAW,
        width: 64,
        height: 48,
        channels: 3,
        sharedMemory: { region: "enc-in", offset: 0n, byteSize: BigInt(input.data.length) },
      },
      encode,
      parameters: PARAMETERS,
      outputSharedMemory: { region: "enc-out", offset: 0n, byteSize: 32n * 1024n },
    });
    const ref = viaRegions.image?.sharedMemory;
    expect(viaRegions.image?.encoding).toBe(ImageEncoding.PNG);
    expect(ref?.byteSize).toBe(BigInt(inMessage.image?.data.length ?? -1));
    const png = slice(outPath, 0n, ref?.byteSize ?? 0n);
    expect(png.equals(Buffer.from(inMessage.image?.data ?? []))).toBe(true);
    expect((await client.readMetadata({ image: { data: png } })).infotext).toContain("Seed: 42");

    // An encoded input in a region goes through the same header checks and decoding as one in a message.
    const upscale = { factor: 2, kernel: UpscaleKernel.LANCZOS3 };
    const processed = await client.process({
      image: inMessage.image,
      upscale,
      encode,
      parameters: PARAMETERS,
    });
    const processedViaRegions = await client.process({
      image: { encoding: ImageEncoding.PNG, sharedMemory: ref },
      upscale,
      encode,
      parameters: PARAMETERS,
      outputSharedMemory: { region: "enc-out", offset: 32n * 1024n, byteSize: 32n * 1024n },
    });
    const out = processedViaRegions.image?.sharedMemory;
    expect([out?.region, out?.offset]).toEqual(["enc-out", 32n * 1024n]);
    expect(slice(outPath, out?.offset ?? 0n, out?.byteSize ?? 0n)).toEqual(
      Buffer.from(processed.image?.data ?? []),
    );
  });

  it("refuses bad regions, slices and capacities by field, touches no file outside its directory, and keeps serving", async () => {
    const pixels = gradientImage(16, 16).data;
    region("small", pixels.length, pixels);
    const outPath = region("out", 100);
    // Sparse: as large as the limits need, costing nothing.
    truncateSync(region("sparse", 0), 5000 * 5000 * 3);
    region("bomb", 0);
    writeFileSync(join(dir, "bomb"), pngHeaderOnly(30_000, 30_000));
    symlinkSync(outside, join(dir, "link"));
    mkdirSync(join(dir, "subdir"));
    execFileSync("mkfifo", [join(dir, "fifo")]);
    const listing = readdirSync(dir).sort();
    const outsideMtime = statSync(outside).mtimeMs;

    const raw = (sharedMemory: object, size = 16) => ({
      encoding: ImageEncoding.RAW,
      width: size,
      height: size,
      channels: 3,
      sharedMemory,
    });
    const ok = { region: "small", offset: 0n, byteSize: BigInt(pixels.length) };
    const encode = (image: object, outputSharedMemory?: object) =>
      client.encode({ image, ...(outputSharedMemory ? { outputSharedMemory } : {}) } as never);
    const IMAGE = "image.shared_memory";
    const OUT = "output_shared_memory";
    const cases: [string, () => Promise<unknown>, Code, string | undefined][] = [
      [
        "a path upwards",
        () => encode(raw({ ...ok, region: "../outside.bin" })),
        Code.InvalidArgument,
        `${IMAGE}.region`,
      ],
      [
        "a separator",
        () => encode(raw({ ...ok, region: "a/small" })),
        Code.InvalidArgument,
        `${IMAGE}.region`,
      ],
      ["dot-dot", () => encode(raw({ ...ok, region: ".." })), Code.InvalidArgument, `${IMAGE}.region`],
      ["no name", () => encode(raw({ ...ok, region: "" })), Code.InvalidArgument, `${IMAGE}.region`],
      [
        "a long name",
        () => encode(raw({ ...ok, region: "r".repeat(129) })),
        Code.InvalidArgument,
        `${IMAGE}.region`,
      ],
      ["no such region", () => encode(raw({ ...ok, region: "absent" })), Code.NotFound, `${IMAGE}.region`],
      ["a link out", () => encode(raw({ ...ok, region: "link" })), Code.InvalidArgument, `${IMAGE}.region`],
      [
        "a directory",
        () => encode(raw({ ...ok, region: "subdir" })),
        Code.InvalidArgument,
        `${IMAGE}.region`,
      ],
      // Opened without blocking: a FIFO with no writer must not hold the service.
      ["a FIFO", () => encode(raw({ ...ok, region: "fifo" })), Code.InvalidArgument, `${IMAGE}.region`],
      [
        "an offset at the end",
        () => encode(raw({ ...ok, offset: 768n })),
        Code.InvalidArgument,
        `${IMAGE}.offset`,
      ],
      [
        "an offset past 2^63",
        () => encode(raw({ ...ok, offset: 1n << 63n })),
        Code.InvalidArgument,
        `${IMAGE}.offset`,
      ],
      [
        "a slice past the end",
        () => encode(raw({ ...ok, offset: 1n })),
        Code.InvalidArgument,
        `${IMAGE}.byte_size`,
      ],
      ["no size", () => encode(raw({ ...ok, byteSize: 0n })), Code.InvalidArgument, `${IMAGE}.byte_size`],
      ["a size unlike the pixels'", () => encode(raw(ok, 15)), Code.InvalidArgument, `${IMAGE}.byte_size`],
      [
        "data beside the region",
        () => encode({ ...raw(ok), data: pixels }),
        Code.InvalidArgument,
        "image.data",
      ],
      // The limits apply as to bytes in a message, on the declared size before a byte is read.
      [
        "more bytes than MAX_INPUT_BYTES",
        () =>
          encode({
            encoding: ImageEncoding.PNG,
            sharedMemory: { region: "sparse", offset: 0n, byteSize: BigInt(2 * MAX_INPUT_BYTES) },
          }),
        Code.ResourceExhausted,
        undefined,
      ],
      [
        "more pixels than MAX_INPUT_PIXELS",
        () => encode(raw({ region: "sparse", offset: 0n, byteSize: 5000n * 5000n * 3n }, 5000)),
        Code.ResourceExhausted,
        undefined,
      ],
      [
        "an output too small",
        () => encode(raw(ok), { region: "out", offset: 0n, byteSize: 100n }),
        Code.InvalidArgument,
        `${OUT}.byte_size`,
      ],
      [
        "an output past the end",
        () => encode(raw(ok), { region: "out", offset: 50n, byteSize: 100n }),
        Code.InvalidArgument,
        `${OUT}.byte_size`,
      ],
      [
        "an output offset out",
        () => encode(raw(ok), { region: "out", offset: 100n, byteSize: 1n }),
        Code.InvalidArgument,
        `${OUT}.offset`,
      ],
      [
        "an output upwards",
        () => encode(raw(ok), { region: "../outside.bin", offset: 0n, byteSize: 10n }),
        Code.InvalidArgument,
        `${OUT}.region`,
      ],
      [
        "an output through a link",
        () => encode(raw(ok), { region: "link", offset: 0n, byteSize: 10n }),
        Code.InvalidArgument,
        `${OUT}.region`,
      ],
      // Regions are the caller's to make: the service creates none.
      [
        "an output region missing",
        () => encode(raw(ok), { region: "new", offset: 0n, byteSize: 10n }),
        Code.NotFound,
        `${OUT}.region`,
      ],
      [
        "an output FIFO",
        () => encode(raw(ok), { region: "fifo", offset: 0n, byteSize: 10n }),
        Code.InvalidArgument,
        `${OUT}.region`,
      ],
      ["ReadMetadata", () => client.readMetadata({ image: raw(ok) }), Code.InvalidArgument, IMAGE],
      [
        "ProcessStream",
        () =>
          collect(
            client.processStream(
              (async function* () {
                yield {
                  part: { case: "start" as const, value: { request: { image: raw(ok) }, imageBytes: 768n } },
                };
              })(),
            ),
          ),
        Code.InvalidArgument,
        `start.request.${IMAGE}`,
      ],
    ];
    for (const [label, call, code, field] of cases) {
      const err = await failure(call());
      if (code === Code.ResourceExhausted) expect(err.rawMessage, label).toMatch(/^image(\.shared_memory)?/);
      expect([err.code, err.metadata.get("dmesh-field") ?? undefined], `${label}: ${err.rawMessage}`).toEqual(
        [code, field],
      );
    }
    // Limits apply on what a header claims, too, before a pixel is decoded.
    const bomb = await failure(
      encode({
        encoding: ImageEncoding.PNG,
        sharedMemory: { region: "bomb", offset: 0n, byteSize: BigInt(statSync(join(dir, "bomb")).size) },
      }),
    );
    expect([bomb.code, bomb.rawMessage]).toEqual([
      Code.ResourceExhausted,
      expect.stringContaining("image.data"),
    ]);

    expect(readFileSync(outside)).toEqual(outsideBytes);
    expect(statSync(outside).mtimeMs).toBe(outsideMtime);
    expect(readdirSync(root).sort()).toEqual(["outside.bin", "regions"]);
    expect(readdirSync(dir).sort()).toEqual(listing);
    expect(readFileSync(outPath).every((b) => b === 0)).toBe(true);
    const fine = await client.encode({ image: raw(ok) });
    expect(fine.image?.data.length).toBeGreaterThan(0);
  });

  it("says the feature is off where SHARED_MEMORY_DIR is unset", async () => {
    const input = { encoding: ImageEncoding.RAW, width: 1, height: 1, channels: 3 };
    const cases = [
      [
        clientWithout.encode({ image: { ...input, sharedMemory: { region: "small", byteSize: 3n } } }),
        "image.shared_memory",
      ],
      [
        clientWithout.encode({
          image: { ...input, data: new Uint8Array(3) },
          outputSharedMemory: { region: "out", byteSize: 100n },
        }),
        "output_shared_memory",
      ],
    ] as const;
    for (const [call, field] of cases) {
      const err = await failure(call);
      expect([err.code, err.metadata.get("dmesh-field")]).toEqual([Code.FailedPrecondition, field]);
      expect(err.rawMessage).toContain("SHARED_MEMORY_DIR");
    }
  });
});

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stream) out.push(item);
  return out;
}
