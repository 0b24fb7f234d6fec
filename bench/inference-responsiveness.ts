import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { type GenerationSpecSchema, SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { Health } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { writeTinyModel } from "@dmesh/tiny-model";
import { type BenchResult, versus } from "./bench-result.js";
import { type InferenceProcess, startInferenceProcess } from "./inference-pipeline.js";
import { median, pairedRatio } from "./measure.js";

const SIZE = 1024;
const STEPS = 10;
const POLL_EVERY_MS = 25;
/** Rounds of generations timed alone, and of generations polled for health. */
const WALL_ROUNDS = 3;
const POLLED_ROUNDS = 2;
/** What DESIGN.md asks of a service while its models compute. */
const WORST_HEALTH_MS = 20;

const SPEC: MessageInitShape<typeof GenerationSpecSchema> = {
  conditioning: { prompt: "a lighthouse on a cliff at sunset", negativePrompt: "blurry" },
  size: { width: SIZE, height: SIZE },
  scheduler: { kind: SchedulerKind.EULER, steps: STEPS },
  params: { seed: 42n },
};

interface Contender {
  readonly name: string;
  readonly service: InferenceProcess;
  readonly healthMs: number[];
  readonly wallMs: number[];
}

/**
 * The inference service answering while its models compute: two processes over the same tiny SDXL model, one
 * with its onnxruntime sessions on worker threads (the default) and one with them on the event loop
 * (ORT_THREADS=0, as before), taking turns round by round. During a 1024² generation a client polls
 * grpc.health.v1 every 25 ms on a connection of its own: the latency of every check, p50 and worst. Apart from
 * those, generations timed alone (a poller answered 40 times a second takes CPU the other one, blocked,
 * does not): their wall time as the client sees it, worker threads against the event loop.
 */
export async function benchInferenceResponsiveness(): Promise<BenchResult[]> {
  const root = mkdtempSync(join(tmpdir(), "dmesh-bench-responsive-"));
  const contenders: Contender[] = [];
  try {
    await writeTinyModel(join(root, "models", "tiny-sdxl"));
    for (const [name, env] of [
      ["worker threads", {}],
      ["event loop", { ORT_THREADS: "0" }],
    ] as const) {
      const service = await startInferenceProcess(root, { MAX_UNET_BATCH: "1", ...env });
      contenders.push({ name, service, healthMs: [], wallMs: [] });
      // Warm: the first large generation grows onnxruntime's arena and V8's heap.
      await service.generate(SPEC);
    }
    for (let round = 0; round < WALL_ROUNDS + POLLED_ROUNDS; round++) {
      // Rotated, so that neither always runs right after the other.
      for (let k = 0; k < contenders.length; k++) {
        const contender = contenders[(k + round) % contenders.length] as Contender;
        if (round < WALL_ROUNDS) await generationTimed(contender);
        else await generationPolled(contender);
      }
    }
    const [threads, loop] = contenders as [Contender, Contender];
    const label = `during a ${SIZE}² generation (tiny SDXL, ${STEPS} Euler steps), polled every ${POLL_EVERY_MS} ms`;
    const onLoop = "models on the event loop (ORT_THREADS=0)";
    const worst = Math.max(...threads.healthMs);
    return [
      versus(`inference: health-check latency p50 ${label}`, median(threads.healthMs), "ms", {
        name: onLoop,
        value: median(loop.healthMs),
      }),
      versus(`inference: health-check latency, worst ${label}`, worst, "ms", {
        name: onLoop,
        value: Math.max(...loop.healthMs),
      }),
      versus(
        `inference: health-check latency, worst ${label}`,
        worst,
        "ms",
        { name: `${WORST_HEALTH_MS} ms`, value: WORST_HEALTH_MS },
        { max: 1 },
      ),
      versus(
        `inference: wall time of a ${SIZE}² generation (tiny SDXL, ${STEPS} Euler steps), models on worker threads`,
        median(threads.wallMs),
        "ms",
        { name: onLoop, value: median(loop.wallMs) },
        { max: 1.03 },
        pairedRatio(threads.wallMs, loop.wallMs),
      ),
    ];
  } finally {
    await Promise.all(contenders.map((c) => c.service.stop()));
    rmSync(root, { recursive: true, force: true });
  }
}

/** One generation alone: its wall time. */
async function generationTimed(contender: Contender): Promise<void> {
  const started = performance.now();
  await contender.service.generate(SPEC);
  contender.wallMs.push(performance.now() - started);
}

/** One generation, with health checks one after another (POLL_EVERY_MS apart) until it is done. */
async function generationPolled(contender: Contender): Promise<void> {
  const transport = createGrpcTransport({ address: contender.service.address });
  const health = createClient(Health, transport);
  try {
    await health.check({ service: "" });
    let generating = true;
    const generation = contender.service.generate(SPEC).finally(() => {
      generating = false;
    });
    const polling = (async () => {
      while (generating) {
        const asked = performance.now();
        await health.check({ service: "" }, { timeoutMs: 60_000 });
        // Asked while the generation ran, however late the answer came.
        contender.healthMs.push(performance.now() - asked);
        await new Promise((resolve) => setTimeout(resolve, POLL_EVERY_MS));
      }
    })();
    await generation;
    await polling;
  } finally {
    transport.close();
  }
}
