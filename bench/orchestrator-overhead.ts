import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { launchMesh, SERVICES, type ServiceName } from "@dmesh/cli/mesh-launcher";
import { GenerationMode, type GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { PostprocessService, SafetyPolicy } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { type Session, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { type BenchResult, versus } from "./bench-result.js";
import { freePort } from "./free-port.js";
import { median } from "./measure.js";

type Spec = MessageInitShape<typeof GenerationSpecSchema>;

const spec = (steps: number): Spec => ({
  conditioning: { prompt: "a lighthouse on a cliff" },
  size: { width: 64, height: 64 },
  scheduler: { steps },
  params: { seed: 42n, guidanceScale: 5 },
});
// Four steps keep the per-step work (progress events, a stored checkpoint per step) in the overhead;
// the null workload is the smallest generation there is.
const OVERHEAD_SPEC = spec(4);
const NULL_SPEC = spec(1);
const SEQUENTIAL = 20;
const CONCURRENT = 50;
const CONCURRENT_SESSIONS = 150;

interface Timed {
  wallMs: number;
  /** Time the orchestrator's own step timings spent waiting on inference and postprocess. */
  domainMs: number;
}

/**
 * The orchestrator's own cost per session, with the four services as separate processes on the tiny model:
 * queue → done as a client sees it minus the time its steps spent in domain services (the session's step
 * timings), at 1 and at 50 sessions in flight; and the throughput of null-workload sessions against the same
 * domain calls (Generate, then a PNG from postprocess) made directly, at the same concurrency.
 */
export async function benchOrchestratorOverhead(): Promise<BenchResult[]> {
  const root = mkdtempSync(join(tmpdir(), "dmesh-bench-orchestrator-"));
  const modelsDir = join(root, "models");
  await ensureTinyModel(join(modelsDir, "tiny-sdxl"));
  const ports = {} as Record<ServiceName, number>;
  for (const name of SERVICES) ports[name] = await freePort();
  const mesh = await launchMesh({
    ports,
    host: "127.0.0.1",
    dataDir: join(root, "data"),
    modelsDir,
    logDir: join(root, "logs"),
    // 50 sessions run at once in the orchestrator and wait in inference's queue, not in the orchestrator's.
    env: { LOG_LEVEL: "info", MAX_CONCURRENT_SESSIONS: "64", MAX_QUEUED_GENERATIONS: "64" },
  });
  const transports = (["orchestrator", "inference", "postprocess"] as const).map((name) =>
    createGrpcTransport({ address: `127.0.0.1:${ports[name]}` }),
  );
  const [toOrchestrator, toInference, toPostprocess] = transports;
  if (!toOrchestrator || !toInference || !toPostprocess) throw new Error("transports");
  try {
    const processing = createClient(ProcessingService, toOrchestrator);
    const inference = createClient(InferenceService, toInference);
    const postprocess = createClient(PostprocessService, toPostprocess);

    const session = async (s: Spec): Promise<Timed> => {
      const started = performance.now();
      let last: Session | undefined;
      for await (const { event } of processing.executeWorkflow(
        { workflowId: "txt2img", spec: s },
        { timeoutMs: 120_000 },
      )) {
        last = event?.session ?? last;
      }
      const wallMs = performance.now() - started;
      if (last?.state !== SessionState.COMPLETED) {
        throw new Error(`session ended ${SessionState[last?.state ?? 0]}: ${last?.error ?? "no session"}`);
      }
      return { wallMs, domainMs: last.timings.reduce((ms, t) => ms + t.seconds * 1000, 0) };
    };
    // The same domain work without the orchestrator: generate (with the checkpoints it asks for), then encode.
    let directs = 0;
    const direct = async (s: Spec): Promise<number> => {
      const started = performance.now();
      let image: { data: Uint8Array; width: number; height: number } | undefined;
      const request = {
        generationId: `direct-${directs++}`,
        spec: { ...s, mode: GenerationMode.TXT2IMG },
        checkpointIntervalSteps: 1,
      };
      for await (const { event } of inference.generate(request, { timeoutMs: 120_000 })) {
        if (event.case === "image" && event.value.image) image = event.value.image;
      }
      if (!image) throw new Error("generate made no image");
      await postprocess.process(
        {
          image,
          parameters: {
            prompt: "a lighthouse on a cliff",
            steps: s.scheduler?.steps ?? 1,
            sampler: "Euler",
            cfgScale: 5,
            seed: 42n,
            width: 64,
            height: 64,
          },
          safety: SafetyPolicy.PASS,
          encode: { encoding: ImageEncoding.PNG, embedMetadata: true },
        },
        { timeoutMs: 60_000 },
      );
      return performance.now() - started;
    };
    const inParallel = async <T>(count: number, inFlight: number, run: () => Promise<T>) => {
      const results: T[] = [];
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next++ < count) results.push(await run());
        }),
      );
      return { results, perSecond: count / ((performance.now() - started) / 1000) };
    };

    // Warm-up: models loaded, connections open, JIT settled on every path.
    await inParallel(2 * CONCURRENT, CONCURRENT, () => session(OVERHEAD_SPEC));
    await inParallel(CONCURRENT, CONCURRENT, () => direct(OVERHEAD_SPEC));

    const one = (await inParallel(SEQUENTIAL, 1, () => session(OVERHEAD_SPEC))).results;
    const oneDirect = (await inParallel(SEQUENTIAL, 1, () => direct(OVERHEAD_SPEC))).results;
    const many = (await inParallel(CONCURRENT_SESSIONS, CONCURRENT, () => session(OVERHEAD_SPEC))).results;
    const nullSessions = await inParallel(CONCURRENT_SESSIONS, CONCURRENT, () => session(NULL_SPEC));
    const nullDirect = await inParallel(CONCURRENT_SESSIONS, CONCURRENT, () => direct(NULL_SPEC));

    const overhead = (runs: Timed[]) => median(runs.map((r) => r.wallMs - r.domainMs));
    const sessionWall = median(one.map((r) => r.wallMs));
    return [
      {
        name: "orchestrator: overhead per session, 1 in flight (queue→done − domain steps)",
        value: overhead(one),
        unit: "ms",
      },
      {
        name: `orchestrator: overhead per session, ${CONCURRENT} in flight (queue→done − domain steps)`,
        value: overhead(many),
        unit: "ms",
      },
      versus("orchestrator: 64x64 4-step session, 1 in flight", sessionWall, "ms", {
        name: "the same Generate + PNG calls made directly",
        value: median(oneDirect),
      }),
      versus(
        `orchestrator: null-workload sessions (64x64, 1 step), ${CONCURRENT} in flight`,
        nullSessions.perSecond,
        "sessions/s",
        {
          name: "the same Generate + PNG calls made directly",
          value: nullDirect.perSecond,
        },
      ),
    ];
  } finally {
    for (const transport of transports) transport.close();
    await mesh.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
