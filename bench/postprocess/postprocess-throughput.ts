import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { NODE_FLAGS } from "@dmesh/cli/mesh-launcher";
import {
  ImageEncoding,
  ImageSchema,
  SharedMemoryRefSchema,
} from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  EncodeRequestSchema,
  PostprocessService,
  UpscaleKernel,
  UpscaleRequestSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { embedPngInfotext } from "@dmesh/postprocess";
import { createGrpcTransport, type GrpcTransport } from "@dmesh/runtime";
import sharp from "sharp";
import { type BenchResult, type RatioTarget, versus } from "../bench-result.js";
import { type ChildService, startChildService } from "../child-service.js";
import {
  type Contender,
  callsPerSecond,
  cpuMicros,
  interleavedThroughput,
  pairedRatio,
  type Tally,
} from "../measure.js";
import { benchImage } from "./bench-image.js";
import { type RegionSlot, SharedMemoryCaller } from "./shared-memory-caller.js";

const SERVICE_ENTRY = fileURLToPath(new URL("./postprocess-service-main.js", import.meta.url));
const BYTE_MOVER_ENTRY = fileURLToPath(new URL("./byte-mover-main.js", import.meta.url));
const SIZE = 1024;
// Twice as many images in flight as this machine has cores, through the service and directly alike: with one
// per core, a core sat idle while its call's bytes were in flight, which a loaded service never does.
const IN_FLIGHT = 2 * availableParallelism();

/**
 * Images per second through the postprocess service (its own process, called over our gRPC transport) against
 * sharp called directly in this process doing the same job: the same kernel, the same PNG settings and the
 * same infotext chunk, from the same raw pixels. The service is called two ways: with the pixels in the
 * messages, as the orchestrator calls it, and through shared memory, as a caller on the same host can (each
 * call writes its input into a region and reads its output back, all inside the timed call). Every side's
 * output is checked byte for byte against sharp's before anything is timed. A fourth contender sends the
 * same requests to a server that answers at once with outputs of the same sizes: the cost of moving the
 * pixels through gRPC alone. All four take turns in one run. Beside each figure, the CPU time per image of
 * every process involved (this one and the server's), which the other load on a shared machine disturbs far
 * less than images per second.
 */
export async function benchPostprocess(): Promise<BenchResult[]> {
  const logDir = mkdtempSync(join(tmpdir(), "dmesh-bench-postprocess-"));
  const rawBytes = SIZE * SIZE * 3;
  // Room for the largest output, the 2x upscale's pixels.
  const regions = await SharedMemoryCaller.create(IN_FLIGHT, rawBytes, 4 * rawBytes);
  // Started as every deployment starts it (its Node flags too).
  const service = await startChildService(
    SERVICE_ENTRY,
    [],
    join(logDir, "postprocess.log"),
    { LOG_LEVEL: "info", SHARED_MEMORY_DIR: regions.dir },
    NODE_FLAGS.postprocess,
  );
  const servicePid = service.child.pid ?? Number.NaN;
  const transport = createGrpcTransport({ address: service.address });
  let mover: ChildService | undefined;
  let moverTransport: GrpcTransport | undefined;
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
    // The text the service formats from these parameters, which a direct caller would have formatted itself.
    const encodedImage = (await client.encode(encodeRequest)).image;
    const { infotext } = await client.readMetadata({ image: encodedImage });
    // The same calls answered at once with outputs of the same sizes: what moving the pixels costs alone.
    mover = await startChildService(
      BYTE_MOVER_ENTRY,
      [String(SIZE * 2), String(encodedImage?.data.length ?? 0)],
      join(logDir, "byte-mover.log"),
    );
    const moverPid = mover.child.pid ?? Number.NaN;
    moverTransport = createGrpcTransport({ address: mover.address });
    const moverClient = createClient(PostprocessService, moverTransport);
    // The same requests with the pixels in the slot's input region and the output asked into its output one.
    const viaRegions = (slot: RegionSlot) => ({
      image: create(ImageSchema, { encoding: ImageEncoding.RAW, ...raw, sharedMemory: slot.input }),
      outputSharedMemory: create(SharedMemoryRefSchema, slot.output),
    });

    const ops = [
      {
        label: `${SIZE}² → ${SIZE * 2}² lanczos3`,
        inMessage: async () => (await client.upscale(upscaleRequest)).image?.data,
        transportAlone: () => moverClient.upscale(upscaleRequest),
        sharedMemory: () =>
          regions.call(
            pixels,
            async (slot) =>
              (await client.upscale({ ...upscaleRequest, ...viaRegions(slot) })).image?.sharedMemory,
          ),
        direct: () =>
          sharp(pixels, { raw })
            .resize(SIZE * 2, SIZE * 2, { kernel: "lanczos3", fit: "fill" })
            .raw()
            .toBuffer(),
      },
      {
        label: `${SIZE}² PNG encode with infotext`,
        inMessage: async () => (await client.encode(encodeRequest)).image?.data,
        transportAlone: () => moverClient.encode(encodeRequest),
        sharedMemory: () =>
          regions.call(
            pixels,
            async (slot) =>
              (await client.encode({ ...encodeRequest, ...viaRegions(slot) })).image?.sharedMemory,
          ),
        direct: async () =>
          embedPngInfotext(await sharp(pixels, { raw }).png({ compressionLevel: 6 }).toBuffer(), infotext),
      },
    ];
    const results: BenchResult[] = [];
    for (const op of ops) {
      const paths = [
        { name: "pixels in messages", call: op.inMessage },
        { name: "shared memory", call: op.sharedMemory },
      ];
      for (const path of paths) await expectSameBytes(`${op.label} (${path.name})`, path.call, op.direct);
      const withService = () => cpuMicros(process.pid) + cpuMicros(servicePid);
      const [inMessage, sharedMemory, alone, direct] = (await interleavedThroughput(
        [
          { call: op.inMessage, cpuMicros: withService },
          { call: op.sharedMemory, cpuMicros: withService },
          { call: op.transportAlone, cpuMicros: () => cpuMicros(process.pid) + cpuMicros(moverPid) },
          { call: op.direct, cpuMicros: () => cpuMicros(process.pid) },
        ] satisfies Contender[],
        { inFlight: IN_FLIGHT, windowMs: 800, windows: 20 },
      )) as [Tally, Tally, Tally, Tally];
      const baseline = { name: "sharp called directly", value: callsPerSecond(direct) };
      const cpuBaseline = { name: "sharp called directly", value: cpuMsPerCall(direct) };
      const rows = (path: string, tally: Tally, target?: RatioTarget) => [
        versus(
          `postprocess: ${op.label} via the service, ${path}`,
          callsPerSecond(tally),
          "images/s",
          baseline,
          target,
          pairedRatio(tally.rounds, direct.rounds),
        ),
        versus(
          `postprocess: ${op.label} CPU per image (client+service), ${path}`,
          cpuMsPerCall(tally),
          "ms",
          cpuBaseline,
        ),
      ];
      // The target is the service's (does it add little to sharp?), measured where the pixels need not cross
      // a socket. With pixels in messages, the transport alone (next row) already costs more than that margin.
      results.push(
        ...rows("shared memory", sharedMemory, { min: 0.9 }),
        ...rows("pixels in messages", inMessage),
        versus(
          `postprocess: ${op.label} CPU per image moving the same bytes through our gRPC alone (no image work)`,
          cpuMsPerCall(alone),
          "ms",
          cpuBaseline,
        ),
      );
    }
    return results;
  } finally {
    transport.close();
    moverTransport?.close();
    await mover?.stop();
    await service.stop();
    await regions.close();
    rmSync(logDir, { recursive: true, force: true });
  }
}

/** Both sides must make the same bytes, or the comparison would not be of the same work. */
async function expectSameBytes(
  label: string,
  service: () => Promise<Uint8Array | undefined>,
  direct: () => Promise<Uint8Array>,
): Promise<void> {
  const [a, b] = await Promise.all([service(), direct()]);
  if (!a || Buffer.compare(a, b) !== 0)
    throw new Error(
      `${label}: the service's output differs from sharp's (${a?.length} vs ${b.length} bytes)`,
    );
}

function cpuMsPerCall(tally: Tally): number {
  return tally.cpuMicros / 1000 / tally.calls;
}
