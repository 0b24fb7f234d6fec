import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  type GenerateRequestSchema,
  InferenceService,
  Stage,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { PostprocessService, UpscaleKernel } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { writeTinyModel, writeTinyUpscaler } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ServiceProcess, startService } from "../faults/support/service-process.js";
import { eventually } from "../faults/support/sessions.js";

// The inference service as its own process, denoising a 1024×1024 image with the tiny SDXL model (two
// resnets per block, one onnxruntime thread): each UNet run takes the better part of a second or more, far
// longer than a health check's round trip on loopback. Everything is asserted as an order of events.
// The postprocess service likewise, upscaling a 768×768 image in one tile: one run of the tiny ×2 model.
let root: string;
let inference: ServiceProcess;
let postprocess: ServiceProcess;
let transport: ReturnType<typeof createGrpcTransport>;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "dmesh-busy-"));
  await writeTinyModel(join(root, "models", "tiny-sdxl"), { layersPerBlock: 2 });
  inference = await startService("inference", {
    label: "inference-busy",
    logDir: root,
    env: {
      MODELS_DIR: join(root, "models"),
      DEFAULT_MODEL: "tiny-sdxl",
      INTRA_OP_THREADS: "1",
      MAX_CONCURRENT_GENERATIONS: "1",
    },
  });
  transport = createGrpcTransport({ address: inference.address });
  await writeTinyUpscaler(join(root, "upscale", "tiny-x2"), { scale: 2 });
  postprocess = await startService("postprocess", {
    label: "postprocess-busy",
    logDir: root,
    env: { UPSCALE_MODELS_DIR: join(root, "upscale"), UPSCALE_TILE_SIZE: "768", INTRA_OP_THREADS: "1" },
  });
});
afterAll(async () => {
  transport?.close();
  await Promise.all([inference?.kill("SIGTERM"), postprocess?.kill("SIGTERM")]);
  if (root) await rm(root, { recursive: true, force: true });
});

const request = (generationId: string): MessageInitShape<typeof GenerateRequestSchema> => ({
  generationId,
  spec: {
    conditioning: { prompt: "a harbour at dawn" },
    size: { width: 1024, height: 1024 },
    scheduler: { steps: 6 },
    params: { seed: 7n },
  },
});

const denoised = (res: { event: { case: string | undefined; value?: unknown } }): number | undefined => {
  if (res.event.case !== "progress") return undefined;
  const p = res.event.value as { stage: Stage; step: number };
  return p.stage === Stage.DENOISING ? p.step : undefined;
};

describe("the inference service while a model computes", () => {
  it("answers health and GetQueue, and takes a pause, before the UNet run in progress ends", async () => {
    const client = createClient(InferenceService, transport);
    const health = createClient(Health, transport);
    const events: string[] = [];
    const asked: Promise<unknown>[] = [];
    for await (const res of client.generate(request("busy-pause"))) {
      const step = denoised(res);
      if (step !== undefined) {
        events.push(`step ${step}`);
        // Step 1 is out: the UNet run of step 2 has begun.
        if (step === 1) {
          asked.push(
            health.check({ service: "" }).then((r) => events.push(`health ${Serving[r.status]}`)),
            client.getQueue({}).then((q) => events.push(`queue running ${q.running}`)),
            client
              .pauseGeneration({ generationId: "busy-pause" })
              .then((r) => events.push(`pause found ${r.found}`)),
          );
        }
      } else if (res.event.case === "checkpoint") events.push(`checkpoint at ${res.event.value.step}`);
      else if (res.event.case === "done") events.push(`done paused ${res.event.value.paused}`);
    }
    await Promise.all(asked);
    const answers = events.slice(1, 4);
    expect(answers.sort()).toEqual(["health SERVING", "pause found true", "queue running 1"]);
    // The pause lands at the next step boundary: the run in progress finishes, and nothing after it.
    expect(events).toEqual([
      "step 1",
      ...events.slice(1, 4),
      "step 2",
      "checkpoint at 2",
      "done paused true",
    ]);
  });

  it("takes a cancel while the UNet run computes, and stops at the next step boundary", async () => {
    const client = createClient(InferenceService, transport);
    const abort = new AbortController();
    const steps: number[] = [];
    await expect(
      (async () => {
        for await (const res of client.generate(request("busy-cancel"), { signal: abort.signal })) {
          const step = denoised(res);
          if (step === undefined) continue;
          steps.push(step);
          if (step === 1) abort.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(steps).toEqual([1]);
    // The service logs how many steps were done when the cancel arrived and when the generation stopped.
    const line = await eventually(
      async () =>
        (await readFile(inference.logFile, "utf8"))
          .split("\n")
          .filter((l) => l.includes('"generation cancelled"'))
          .map((l) => JSON.parse(l) as { stepsAtAbort: number; stepsDone: number })[0],
      30_000,
      "the service's generation cancelled line",
    );
    expect(line).toMatchObject({ stepsAtAbort: 1, stepsDone: 2 });
  });
});

describe("the postprocess service while a model computes", () => {
  it("answers health checks, one after another, before the upscale model's run ends", async () => {
    const CHECKS = 100;
    const side = 768;
    const data = new Uint8Array(side * side * 3).map((_, i) => (i * 37) % 251);
    const image = { encoding: ImageEncoding.RAW, data, width: side, height: side, channels: 3 };
    const upscale = { kernel: UpscaleKernel.MODEL, model: "tiny-x2", factor: 0 };
    const calls = createGrpcTransport({ address: postprocess.address });
    const checks = createGrpcTransport({ address: postprocess.address });
    try {
      const client = createClient(PostprocessService, calls);
      const health = createClient(Health, checks);
      // Loads the model (its load runs a probe tile) before anything is counted.
      await client.upscale({
        image: { ...image, data: data.subarray(0, 64 * 64 * 3), width: 64, height: 64 },
        upscale,
      });
      const events: string[] = [];
      let upscaled = false;
      const done = client.upscale({ image, upscale }).then((r) => {
        upscaled = true;
        events.push(`upscaled ${r.image?.width}x${r.image?.height}`);
      });
      // Each check is asked only once the one before it was answered. With the model on the event loop, its
      // run (one tile: the whole image) holds every answer until it ends: there, only ~30 checks fit in what
      // the service does before and after the run (receiving, tiling, blending, sending); here, hundreds.
      while (!upscaled && events.length < CHECKS) {
        const status = (await health.check({ service: "" })).status;
        if (!upscaled) events.push(`health ${Serving[status]}`);
      }
      await done;
      expect(events.slice(0, CHECKS)).toEqual(Array(CHECKS).fill("health SERVING"));
    } finally {
      calls.close();
      checks.close();
    }
  });
});
