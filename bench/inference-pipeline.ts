import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { type GenerationSpecSchema, SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import {
  type GenerationTimings,
  InferenceService,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { writeTinyModel } from "@dmesh/tiny-model";
import { type BenchResult, versus } from "./bench-result.js";
import { stopChild } from "./child-service.js";
import { freePort } from "./free-port.js";

type Spec = MessageInitShape<typeof GenerationSpecSchema>;

const INFERENCE_MAIN = join(dirname(fileURLToPath(import.meta.resolve("@dmesh/inference"))), "main.js");

const spec = (size: number, steps: number, count = 1): Spec => ({
  conditioning: { prompt: "a lighthouse on a cliff at sunset, (oil painting:1.2)", negativePrompt: "blurry" },
  size: { width: size, height: size },
  scheduler: { kind: SchedulerKind.EULER, steps },
  params: { seed: 42n },
  output: { count },
});

/**
 * The inference pipeline, in the inference service's own process (started as `main.js` is deployed, with the
 * tiny SDXL model): (a) a generation's wall time against the sum of its ONNX Runtime `run` calls, both as the
 * pipeline reports them in its `done` event; (b) images per second when a request's 4 images share UNet runs
 * (MAX_UNET_BATCH=4) against one image per run; (c) the process's RSS after 1,000 generations against after
 * the first 50.
 */
export async function benchInferencePipeline(): Promise<BenchResult[]> {
  const root = mkdtempSync(join(tmpdir(), "dmesh-bench-inference-"));
  try {
    await writeTinyModel(join(root, "models", "tiny-sdxl"));
    const results: BenchResult[] = [];

    const single = await startInferenceProcess(root, { MAX_UNET_BATCH: "1" });
    try {
      const overhead = spec(256, 20);
      for (let i = 0; i < 3; i++) await single.generate(overhead);
      const timings: GenerationTimings[] = [];
      for (let i = 0; i < 15; i++) timings.push(await single.generate(overhead));
      const sum = (pick: (t: GenerationTimings) => number) => timings.reduce((n, t) => n + pick(t), 0) * 1000;
      results.push(
        versus(
          "inference: pipeline wall time per generation (tiny SDXL, 256², 20 Euler steps)",
          sum((t) => t.totalSeconds) / timings.length,
          "ms",
          { name: "its ONNX Runtime run calls", value: sum((t) => t.onnxSeconds) / timings.length },
          { max: 1.05 },
        ),
      );

      const rss = spec(64, 8);
      for (let i = 0; i < 50; i++) await single.generate(rss);
      const after50 = single.rssMiB();
      for (let i = 50; i < 1000; i++) await single.generate(rss);
      results.push(
        versus(
          "inference: RSS after 1,000 generations (64², 8 steps)",
          single.rssMiB(),
          "MiB",
          { name: "after the first 50", value: after50 },
          { max: 1.05 },
        ),
      );

      const batch = spec(64, 20, 4);
      const perSecondSingle = await imagesPerSecond(single, batch);
      const batched = await startInferenceProcess(root, { MAX_UNET_BATCH: "4" });
      try {
        results.push(
          versus(
            "inference: images/s, 4 images per UNet run (64², 20 steps, 4 per request)",
            await imagesPerSecond(batched, batch),
            "img/s",
            { name: "one image per UNet run", value: perSecondSingle },
            { min: 1 },
          ),
        );
      } finally {
        await batched.stop();
      }
    } finally {
      await single.stop();
    }
    return results;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function imagesPerSecond(service: InferenceProcess, request: Spec): Promise<number> {
  for (let i = 0; i < 2; i++) await service.generate(request);
  const rounds = 8;
  const started = performance.now();
  for (let i = 0; i < rounds; i++) await service.generate(request);
  return (rounds * Number(request.output?.count ?? 1)) / ((performance.now() - started) / 1000);
}

interface InferenceProcess {
  generate(request: Spec): Promise<GenerationTimings>;
  rssMiB(): number;
  stop(): Promise<void>;
}

async function startInferenceProcess(root: string, env: Record<string, string>): Promise<InferenceProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [INFERENCE_MAIN], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, PORT: String(port), MODELS_DIR: join(root, "models"), LOG_LEVEL: "warn", ...env },
  });
  const transport = createGrpcTransport({ address: `127.0.0.1:${port}` });
  const client = createClient(InferenceService, transport);
  const generate = async (request: Spec) => {
    let timings: GenerationTimings | undefined;
    for await (const res of client.generate({ spec: request })) {
      if (res.event.case === "done") timings = res.event.value.timings;
    }
    if (!timings) throw new Error("inference: a generation ended without its done event");
    return timings;
  };
  // Ready once it answers (it loads the default model before it serves).
  for (let tries = 0; ; tries++) {
    try {
      await generate(spec(64, 1));
      break;
    } catch (err) {
      if (tries > 100 || child.exitCode !== null) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    generate,
    rssMiB: () => {
      const status = readFileSync(`/proc/${child.pid}/status`, "latin1");
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
    },
    stop: async () => {
      transport.close();
      await stopChild(child);
    },
  };
}
