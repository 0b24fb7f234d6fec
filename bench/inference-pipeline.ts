import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { NODE_FLAGS } from "@dmesh/cli/mesh-launcher";
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

const spec = (
  size: number,
  steps: number,
  count = 1,
  prompt = "a lighthouse on a cliff at sunset",
): Spec => ({
  conditioning: { prompt: `${prompt}, (oil painting:1.2)`, negativePrompt: "blurry" },
  size: { width: size, height: size },
  scheduler: { kind: SchedulerKind.EULER, steps },
  params: { seed: 42n },
  output: { count },
});

/**
 * The inference pipeline, in the inference service's own process (started as `main.js` is deployed, with the
 * tiny SDXL model): (c) the fresh process's RSS after 1,000 generations against after its first 50 (and 300);
 * (a) a generation's wall time against the sum of its ONNX Runtime `run` calls, both as the pipeline reports
 * them in its `done` event, at 512² and 128²; (b) images per second when a request's 4 images share UNet runs
 * (MAX_UNET_BATCH=4) against one image per run.
 */
export async function benchInferencePipeline(): Promise<BenchResult[]> {
  const root = mkdtempSync(join(tmpdir(), "dmesh-bench-inference-"));
  try {
    await writeTinyModel(join(root, "models", "tiny-sdxl"));
    const results: BenchResult[] = [];

    const single = await startInferenceProcess(root, { MAX_UNET_BATCH: "1" });
    try {
      // First, in the fresh process: its memory over its first 1,000 generations.
      const rss = spec(64, 8);
      const after: Record<number, number> = {};
      for (let i = 1; i <= 1000; i++) {
        await single.generate(rss);
        if (i === 50 || i === 300) after[i] = single.rssMiB();
      }
      const final = single.rssMiB();
      const label = "inference: RSS after 1,000 generations (64², 8 steps)";
      results.push(
        versus(
          label,
          final,
          "MiB",
          { name: "after the first 50", value: after[50] ?? Number.NaN },
          { max: 1.05 },
        ),
      );
      // V8 grows its young generation and lets old-space garbage wait for a full collection over the first few
      // hundred tiny generations; against the warmed-up process the same figure shows whether anything leaks.
      results.push(
        versus(
          label,
          final,
          "MiB",
          { name: "after the first 300", value: after[300] ?? Number.NaN },
          { max: 1.05 },
        ),
      );

      // A new prompt each time, so that every generation pays its prompt encoding (tokenizer and weights in JS).
      // Two sizes: the JS work per step grows with the latents as the model's does, fixed costs do not.
      for (const [size, count] of [
        [512, 8],
        [128, 15],
      ] as const) {
        const overhead = (i: number) => spec(size, 20, 1, `a lighthouse number ${i} on a cliff at sunset`);
        for (let i = 0; i < 2; i++) await single.generate(overhead(i));
        const timings: GenerationTimings[] = [];
        for (let i = 0; i < count; i++) timings.push(await single.generate(overhead(100 + i)));
        const mean = (pick: (t: GenerationTimings) => number) =>
          (timings.reduce((n, t) => n + pick(t), 0) * 1000) / timings.length;
        results.push(
          versus(
            `inference: pipeline wall time per generation (tiny SDXL, ${size}², 20 Euler steps)`,
            mean((t) => t.totalSeconds),
            "ms",
            { name: "its ONNX Runtime run calls", value: mean((t) => t.onnxSeconds) },
            { max: 1.05 },
          ),
        );
      }

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

export interface InferenceProcess {
  /** 127.0.0.1:port it listens on. */
  readonly address: string;
  generate(request: Spec): Promise<GenerationTimings>;
  rssMiB(): number;
  stop(): Promise<void>;
}

/** The inference service's `main.js` in its own process over `<root>/models`, ready once it has generated. */
export async function startInferenceProcess(
  root: string,
  env: Record<string, string>,
): Promise<InferenceProcess> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [...NODE_FLAGS.inference, INFERENCE_MAIN], {
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
    address: `127.0.0.1:${port}`,
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
