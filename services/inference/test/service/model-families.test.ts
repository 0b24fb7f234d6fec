import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import {
  AlgorithmType,
  SchedulerKind,
  SigmaSchedule,
  SolverType,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { Stage } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { ModelFamily } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { SchedulerService } from "@dmesh/contracts/dmesh/scheduler/v1/scheduler_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, failure, generate, imagesOf, same, smallSpec } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

// SD 1.x and SD 2.x end to end through the inference service (real gRPC server on a loopback port, tiny
// real ONNX models): their scheduler_config.json is honoured (SD 1.5's PNDM, SD 2.1's v-prediction DDIM), and
// the families' samplers run through the pipeline.
let service: TestInference;
let schedulers: ReturnType<typeof createClient<typeof SchedulerService>>;

beforeAll(async () => {
  service = await startTestInference(
    { sd15: { kind: "sd15" }, sd2: { kind: "sd2" } },
    { DEFAULT_MODEL: "sd15" },
    async (dir) => {
      // The same SD 2.x weights with an epsilon scheduler config: what ignoring v-prediction would run.
      await cp(join(dir, "sd2"), join(dir, "sd2-epsilon"), { recursive: true });
      const file = join(dir, "sd2-epsilon", "scheduler", "scheduler_config.json");
      const config = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
      await writeFile(file, JSON.stringify({ ...config, prediction_type: "epsilon" }));
    },
  );
  schedulers = createClient(SchedulerService, createGrpcTransport({ address: service.address }));
});
afterAll(async () => {
  await service?.close();
});

const spec = (base: string, scheduler: Record<string, unknown> = {}) =>
  smallSpec({ models: { base }, scheduler: { steps: 6, ...scheduler }, params: { seed: 3n } });

describe("SD 1.x", () => {
  it("is described as SD 1.x and schedules with its PNDMScheduler config (PLMS, first step repeated)", async () => {
    const { model } = await service.models.getModel({ id: "sd15" });
    expect(model?.family).toBe(ModelFamily.SD1);
    const schedule = await schedulers.computeSchedule({ model: "sd15", scheduler: { steps: 10 } });
    expect(JSON.parse(schedule.configJson)).toMatchObject({
      _class_name: "PNDMScheduler",
      skip_prk_steps: true,
    });
    expect(schedule.timesteps).toEqual([901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  });

  it("generates with PNDM when the request names no scheduler: 7 model runs for 6 steps, the bytes of an explicit PLMS", async () => {
    const events = await generate(service, { spec: spec("sd15") });
    expect(events.progress.filter((p) => p.stage === Stage.DENOISING).map((p) => p.totalSteps)[0]).toBe(7);
    const [explicit] = await imagesOf(service, spec("sd15", { kind: SchedulerKind.PNDM }));
    const [euler] = await imagesOf(service, spec("sd15", { kind: SchedulerKind.EULER }));
    expect(same(events.images[0]?.image?.data, explicit)).toBe(true);
    expect(same(explicit, euler)).toBe(false);
    // The stream reports what ran (the infotext's "Sampler: PLMS"), not the empty request.
    expect(events.done?.scheduler).toMatchObject({ kind: SchedulerKind.PNDM, steps: 6 });
  });

  it("refuses an option PLMS lacks, given without a kind, before any work: INVALID_ARGUMENT naming the field and model", async () => {
    const seen: Stage[] = [];
    const refused = await failure(
      generate(
        service,
        { spec: spec("sd15", { karrasSigmas: true }) },
        { onProgress: (p) => seen.push(p.stage) },
      ),
    );
    expect([refused.code, refused.field]).toEqual([Code.InvalidArgument, "spec.scheduler.karras_sigmas"]);
    expect(refused.message).toContain(`model "sd15"'s own scheduler PLMS`);
    expect(seen).toEqual([]);
  });
});

describe("SD 2.x", () => {
  it("is described as SD 2.x, 768 native, and schedules with v-prediction DDIM", async () => {
    const { model } = await service.models.getModel({ id: "sd2" });
    expect([model?.family, model?.nativeSize]).toEqual([ModelFamily.SD2, 768]);
    const schedule = await schedulers.computeSchedule({ model: "sd2", scheduler: { steps: 4 } });
    expect(JSON.parse(schedule.configJson)).toMatchObject({
      _class_name: "DDIMScheduler",
      prediction_type: "v_prediction",
    });
  });

  it("denoises with v-prediction: the same weights under an epsilon config give another image", async () => {
    const [v] = await imagesOf(service, spec("sd2"));
    const [again] = await imagesOf(service, spec("sd2"));
    const [epsilon] = await imagesOf(service, spec("sd2-epsilon"));
    expect(v?.length).toBe(64 * 64 * 3);
    expect(same(v, again)).toBe(true);
    expect(same(v, epsilon)).toBe(false);
    const events = await generate(service, { spec: spec("sd2") });
    expect(events.done?.scheduler).toMatchObject({ kind: SchedulerKind.DDIM, steps: 6 });
  });

  it.each([
    ["UniPC bh1, order 3", { kind: SchedulerKind.UNIPC, solverType: SolverType.BH1, solverOrder: 3 }],
    [
      "DPM++ 2S SDE Karras",
      {
        kind: SchedulerKind.DPM_SOLVER_SINGLESTEP,
        algorithmType: AlgorithmType.SDE_DPMSOLVER_PLUS_PLUS,
        sigmaSchedule: SigmaSchedule.KARRAS,
      },
    ],
    ["DPM2 a Beta", { kind: SchedulerKind.KDPM2_ANCESTRAL, sigmaSchedule: SigmaSchedule.BETA }],
    ["LMS Exponential", { kind: SchedulerKind.LMS, sigmaSchedule: SigmaSchedule.EXPONENTIAL }],
    ["DEIS", { kind: SchedulerKind.DEIS }],
  ])("%s runs on a v-prediction model, the same seed giving the same bytes", async (_name, scheduler) => {
    const [a] = await imagesOf(service, spec("sd2", scheduler));
    const [b] = await imagesOf(service, spec("sd2", scheduler));
    const [ddim] = await imagesOf(service, spec("sd2"));
    expect(a?.length).toBe(64 * 64 * 3);
    expect(same(a, b)).toBe(true);
    expect(same(a, ddim)).toBe(false);
  });

  it("refuses a scheduler option the family cannot honour before generating, naming the field", async () => {
    const order = await failure(
      generate(service, { spec: spec("sd2", { kind: SchedulerKind.UNIPC, solverOrder: 5 }) }),
    );
    expect([order.code, order.field]).toEqual([Code.InvalidArgument, "spec.scheduler.solver_order"]);
    const algorithm = await failure(
      generate(service, {
        spec: spec("sd2", { kind: SchedulerKind.DDIM, algorithmType: AlgorithmType.DPMSOLVER_PLUS_PLUS }),
      }),
    );
    expect([algorithm.code, algorithm.field]).toEqual([
      Code.InvalidArgument,
      "spec.scheduler.algorithm_type",
    ]);
    const [still] = await imagesOf(service, spec("sd2"));
    expect(still?.length).toBe(64 * 64 * 3);
  });
});
