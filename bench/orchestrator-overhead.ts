import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
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
import { cpuMicros, median } from "./measure.js";

type Spec = MessageInitShape<typeof GenerationSpecSchema>;

// Four steps keep the per-step work (progress events, a stored checkpoint per step) in the overhead;
// the null workload is the smallest generation there is.
const OVERHEAD_STEPS = 4;
const NULL_STEPS = 1;
const PAIRS = 30;
const CONCURRENT = 50;
const CONCURRENT_SESSIONS = 100;
const ROUNDS = 2;

/**
 * The orchestrator's own cost per session, with the four services as separate processes on the tiny model.
 * Overhead is queue → done as a client sees it (ExecuteWorkflow called → COMPLETED received) minus the time
 * the same domain work takes when the client makes the calls itself: Generate (asking for a checkpoint every
 * step, as the orchestrator does) then Process to a PNG with its infotext, same spec and seed. Every session
 * has a seed of its own, so that it stores a new artifact as real sessions do. At 1 in flight each session is
 * paired with its direct twin, run next to it (order alternating), and the median of the differences is
 * reported; at 50 in flight, 50 direct calls run beside the 50 sessions and the medians are subtracted.
 * Also: the orchestrator process's CPU time per session, the throughput of null-workload sessions against
 * the same calls made directly, and one fdatasync on the data directory's disk, which each durable step of
 * a session (the artifact file, then the WAL) waits for.
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
    // 50 sessions run at once in the orchestrator and wait in inference's queue (beside 50 direct calls), not
    // in the orchestrator's.
    env: { LOG_LEVEL: "info", MAX_CONCURRENT_SESSIONS: "64", MAX_QUEUED_GENERATIONS: "128" },
  });
  const transports = (["orchestrator", "inference", "postprocess"] as const).map((name) =>
    createGrpcTransport({ address: `127.0.0.1:${ports[name]}` }),
  );
  const [toOrchestrator, toInference, toPostprocess] = transports;
  if (!toOrchestrator || !toInference || !toPostprocess) throw new Error("transports");
  let seeds = 1000n;
  const spec = (steps: number): Spec => ({
    conditioning: { prompt: "a lighthouse on a cliff" },
    size: { width: 64, height: 64 },
    scheduler: { steps },
    params: { seed: seeds++, guidanceScale: 5 },
  });
  try {
    const processing = createClient(ProcessingService, toOrchestrator);
    const inference = createClient(InferenceService, toInference);
    const postprocess = createClient(PostprocessService, toPostprocess);

    const session = async (s: Spec): Promise<number> => {
      const started = performance.now();
      let last: Session | undefined;
      for await (const { event } of processing.executeWorkflow(
        { workflowId: "txt2img", spec: s },
        { timeoutMs: 120_000 },
      )) {
        last = event?.session ?? last;
      }
      if (last?.state !== SessionState.COMPLETED) {
        throw new Error(`session ended ${SessionState[last?.state ?? 0]}: ${last?.error ?? "no session"}`);
      }
      return performance.now() - started;
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
            seed: s.params?.seed ?? 0n,
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
      return { results, seconds: (performance.now() - started) / 1000 };
    };

    // Warm-up: models loaded, connections open, JIT settled on every path.
    await inParallel(2 * CONCURRENT, CONCURRENT, () => session(spec(OVERHEAD_STEPS)));
    await inParallel(CONCURRENT, CONCURRENT, () => direct(spec(OVERHEAD_STEPS)));

    const orchestratorPid = mesh.children.orchestrator.pid ?? -1;
    const cpuBefore = cpuMicros(orchestratorPid);
    const one: number[] = [];
    const oneDirect: number[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const s = spec(OVERHEAD_STEPS);
      // Which of the two goes first alternates: neither gets the quieter moment systematically.
      if (i % 2 === 0) one.push(await session(s));
      oneDirect.push(await direct(s));
      if (i % 2 === 1) one.push(await session(s));
    }
    const cpuPerSession = (cpuMicros(orchestratorPid) - cpuBefore) / 1000 / PAIRS;

    // 50 sessions in flight with 50 direct twins in flight beside them: inference's queue is the same for
    // both, and so is every busy or quiet moment of the machine; the difference of the medians is the
    // orchestrator's. Null-workload throughput: sessions alone, then the direct calls alone, taking turns.
    const many: number[] = [];
    const manyDirect: number[] = [];
    const nullSeconds = { sessions: 0, direct: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const [sessions, directs] = await Promise.all([
        inParallel(CONCURRENT_SESSIONS, CONCURRENT, () => session(spec(OVERHEAD_STEPS))),
        inParallel(CONCURRENT_SESSIONS, CONCURRENT, () => direct(spec(OVERHEAD_STEPS))),
      ]);
      many.push(...sessions.results);
      manyDirect.push(...directs.results);
      nullSeconds.sessions += (
        await inParallel(CONCURRENT_SESSIONS, CONCURRENT, () => session(spec(NULL_STEPS)))
      ).seconds;
      nullSeconds.direct += (
        await inParallel(CONCURRENT_SESSIONS, CONCURRENT, () => direct(spec(NULL_STEPS)))
      ).seconds;
    }
    const sync = median(fdatasyncTimes(join(root, "data"), 20));

    const paired = one.map((ms, i) => ms - (oneDirect[i] ?? Number.NaN));
    return [
      {
        name: "orchestrator: overhead per session, 1 in flight (queue→done − same calls made directly)",
        value: median(paired),
        unit: "ms",
      },
      {
        name: `orchestrator: overhead per session, ${CONCURRENT} in flight (queue→done − same calls made directly)`,
        value: median(many) - median(manyDirect),
        unit: "ms",
      },
      versus(`orchestrator: 64x64 ${OVERHEAD_STEPS}-step session, 1 in flight`, median(one), "ms", {
        name: "the same Generate + PNG calls made directly",
        value: median(oneDirect),
      }),
      {
        name: "orchestrator: its process's CPU time per session, 1 in flight",
        value: cpuPerSession,
        unit: "ms",
      },
      { name: "orchestrator: one 4 KiB fdatasync on the data directory's disk", value: sync, unit: "ms" },
      versus(
        `orchestrator: null-workload sessions (64x64, ${NULL_STEPS} step), ${CONCURRENT} in flight`,
        (ROUNDS * CONCURRENT_SESSIONS) / nullSeconds.sessions,
        "sessions/s",
        {
          name: "the same Generate + PNG calls made directly",
          value: (ROUNDS * CONCURRENT_SESSIONS) / nullSeconds.direct,
        },
      ),
    ];
  } finally {
    for (const transport of transports) transport.close();
    await mesh.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

/** Milliseconds of each of `count` fdatasync calls after appending 4 KiB to a file in `dir`. */
function fdatasyncTimes(dir: string, count: number): number[] {
  const path = join(dir, "bench-fdatasync");
  const fd = openSync(path, "w");
  try {
    return Array.from({ length: count }, () => {
      writeSync(fd, Buffer.alloc(4096, 1));
      const started = performance.now();
      fdatasyncSync(fd);
      return performance.now() - started;
    });
  } finally {
    closeSync(fd);
    rmSync(path);
  }
}
