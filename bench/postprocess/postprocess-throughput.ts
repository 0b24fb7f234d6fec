import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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
import { createGrpcTransport } from "@dmesh/runtime";
import sharp from "sharp";
import { type BenchResult, versus } from "../bench-result.js";
import { startChildService } from "../child-service.js";
import { type Contender, callsPerSecond, cpuMicros, interleavedThroughput, type Tally } from "../measure.js";
import { benchImage } from "./bench-image.js";
import { type RegionSlot, SharedMemoryCaller } from "./shared-memory-caller.js";

const SERVICE_ENTRY = fileURLToPath(new URL("./postprocess-service-main.js", import.meta.url));
const SIZE = 1024;
// As many images in flight as this machine has cores, through the service and directly alike.
const IN_FLIGHT = 2;

/**
 * Images per second through the postprocess service (its own process, called over our gRPC transport) against
 * sharp called directly in this process doing the same job: the same kernel, the same PNG settings and the
 * same infotext chunk, from the same raw pixels. The service is called two ways: with the pixels in the
 * messages, as the orchestrator calls it, and through shared memory, as a caller on the same host can (each
 * call writes its input into a region and reads its output back, all inside the timed call). Every side's
 * output is checked byte for byte against sharp's before anything is timed; the three take turns in one run.
 * Beside each figure, the CPU time per image of every process involved (this one and the service's), which
 * the other load on a shared machine disturbs far less than images per second.
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
    const { infotext } = await client.readMetadata({ image: (await client.encode(encodeRequest)).image });
    // The same requests with the pixels in the slot's input region and the output asked into its output one.
    const viaRegions = (slot: RegionSlot) => ({
      image: create(ImageSchema, { encoding: ImageEncoding.RAW, ...raw, sharedMemory: slot.input }),
      outputSharedMemory: create(SharedMemoryRefSchema, slot.output),
    });

    const ops = [
      {
        label: `${SIZE}² → ${SIZE * 2}² lanczos3`,
        inMessage: async () => (await client.upscale(upscaleRequest)).image?.data,
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
      const bothProcesses = () => cpuMicros(process.pid) + cpuMicros(servicePid);
      const tallies = (await interleavedThroughput(
        [
          ...paths.map((path) => ({ call: path.call, cpuMicros: bothProcesses })),
          { call: op.direct, cpuMicros: () => cpuMicros(process.pid) },
        ] satisfies Contender[],
        { inFlight: IN_FLIGHT, windowMs: 1200, windows: 6 },
      )) as Tally[];
      const direct = tallies[paths.length] as Tally;
      const baseline = "sharp called directly";
      for (const [i, path] of paths.entries()) {
        const viaService = tallies[i] as Tally;
        // Both paths keep issue #5's target: the orchestrator still sends pixels in messages.
        results.push(
          versus(
            `postprocess: ${op.label} via the service, ${path.name}`,
            callsPerSecond(viaService),
            "images/s",
            { name: baseline, value: callsPerSecond(direct) },
            { min: 0.9 },
          ),
          versus(
            `postprocess: ${op.label} CPU per image (client+service), ${path.name}`,
            cpuMsPerCall(viaService),
            "ms",
            { name: baseline, value: cpuMsPerCall(direct) },
          ),
        );
      }
    }
    return results;
  } finally {
    transport.close();
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
