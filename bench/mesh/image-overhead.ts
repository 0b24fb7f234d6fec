import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { orchestratorClients } from "@dmesh/cli/clients";
import { launchMesh, SERVICES, type ServiceName } from "@dmesh/cli/mesh-launcher";
import {
  GenerationMode,
  type GenerationSpecSchema,
  SchedulerKind,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { type Session, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { type BenchResult, versus } from "../bench-result.js";
import { freePort } from "../free-port.js";
import { median } from "../measure.js";

const SIZE = 256;
const STEPS = 4;
const IMAGES = 7;

const spec: MessageInitShape<typeof GenerationSpecSchema> = {
  conditioning: { prompt: "a lighthouse on a cliff at sunset, oil painting" },
  size: { width: SIZE, height: SIZE },
  scheduler: { kind: SchedulerKind.EULER, steps: STEPS },
  params: { seed: 42n },
};

/**
 * What the mesh adds per image: an orchestrated txt2img (Connect to the orchestrator, which streams from
 * inference, sends the pixels to postprocess for a PNG with its infotext, and stores the artifact) against
 * the inference service's own time for the same spec (its `done` event's timings), and a direct Generate call
 * to inference, the four services running as separate processes with the tiny model.
 */
export async function benchMeshOverhead(): Promise<BenchResult[]> {
  const root = mkdtempSync(join(tmpdir(), "dmesh-bench-mesh-"));
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
    env: { LOG_LEVEL: "info" },
  });
  const transport = createGrpcTransport({ address: `127.0.0.1:${ports.inference}` });
  try {
    const orchestrator = orchestratorClients(mesh.url);
    const inference = createClient(InferenceService, transport);

    const orchestrated = async () => {
      const started = performance.now();
      let session: Session | undefined;
      for await (const { event } of orchestrator.processing.executeWorkflow({
        workflowId: "txt2img",
        spec,
      })) {
        session = event?.session ?? session;
      }
      if (session?.state !== SessionState.COMPLETED || session.artifactIds.length !== 1) {
        const state = SessionState[session?.state ?? SessionState.UNSPECIFIED];
        throw new Error(`orchestrated txt2img ended ${state}: ${session?.error ?? "no session"}`);
      }
      // The orchestrator's own record of each workflow step: where the overhead goes.
      const stepMs = (id: string) =>
        (session?.timings.find((t) => t.stepId === id)?.seconds ?? Number.NaN) * 1000;
      return {
        wallMs: performance.now() - started,
        generateMs: stepMs("generate"),
        encodeMs: stepMs("encode"),
      };
    };
    const direct = async () => {
      const started = performance.now();
      let ownMs: number | undefined;
      const request = { generationId: `bench-${started}`, spec: { ...spec, mode: GenerationMode.TXT2IMG } };
      for await (const { event } of inference.generate(request, { timeoutMs: 120_000 })) {
        if (event.case === "done") ownMs = (event.value.timings?.totalSeconds ?? 0) * 1000;
      }
      if (ownMs === undefined) throw new Error("inference ended without a done event");
      return { wallMs: performance.now() - started, ownMs };
    };

    // The first of each loads and warms up everything on its path.
    await orchestrated();
    await direct();
    const runs: { wallMs: number; generateMs: number; encodeMs: number }[] = [];
    const directRuns: { wallMs: number; ownMs: number }[] = [];
    for (let i = 0; i < IMAGES; i++) {
      runs.push(await orchestrated());
      directRuns.push(await direct());
    }
    const own = {
      name: "inference's own time (done timings)",
      value: median(directRuns.map((r) => r.ownMs)),
    };
    const wall = median(runs.map((r) => r.wallMs));
    // Each orchestrated image against the direct one made right after it: a busy moment hits both.
    const overheads = runs.map((r, i) => r.wallMs - (directRuns[i]?.ownMs ?? Number.NaN));
    return [
      versus(`per image: orchestrated ${SIZE}x${SIZE} txt2img, ${STEPS} steps, tiny model`, wall, "ms", own),
      {
        name: "per image: mesh overhead (orchestrated − inference's own)",
        value: median(overheads),
        unit: "ms",
      },
      versus(
        "per image: direct Generate call to inference",
        median(directRuns.map((r) => r.wallMs)),
        "ms",
        own,
      ),
      versus("per image: orchestrator's generate step", median(runs.map((r) => r.generateMs)), "ms", own),
      {
        name: "per image: orchestrator's encode step (postprocess PNG, store)",
        value: median(runs.map((r) => r.encodeMs)),
        unit: "ms",
      },
    ];
  } finally {
    transport.close();
    await mesh.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
