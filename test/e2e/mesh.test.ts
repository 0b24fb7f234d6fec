import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { orchestratorClients } from "@dmesh/cli/clients";
import { runWorkflow } from "@dmesh/cli/run-workflow";
import { SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { MeshService } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { SchedulerService } from "@dmesh/contracts/dmesh/scheduler/v1/scheduler_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { ensureTinyModel } from "@dmesh/tiny-model";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pngInfo } from "../support/png-info.js";
import { startTestMesh, type TestMesh } from "../support/test-mesh.js";

let mesh: TestMesh;

beforeAll(async () => {
  // debug: quick successful calls write their access line at debug, and this suite reads every hop's lines.
  mesh = await startTestMesh({ LOG_LEVEL: "debug" });
});
afterAll(async () => {
  await mesh?.dispose();
});

const SMALL = { size: { width: 96, height: 64 }, scheduler: { steps: 4 } };

describe("one image through every hop", () => {
  it("writes a PNG of the requested size with its parameters; same seed same bytes, other seed different", async () => {
    const clients = orchestratorClients(mesh.url);
    const run = async (seed: bigint, out: string) =>
      runWorkflow(clients, {
        workflowId: "txt2img",
        spec: {
          ...SMALL,
          conditioning: { prompt: "a red fox, (snow:1.2)", negativePrompt: "blurry" },
          params: { seed },
        },
        out: join(mesh.dir, out),
      });
    const a = await run(42n, "a.png");
    const b = await run(42n, "b.png");
    const c = await run(43n, "c.png");
    expect(a.files).toHaveLength(1);
    const [bytesA, bytesB, bytesC] = [a, b, c].map((r) => readFileSync(r.files[0] ?? ""));
    const info = pngInfo(bytesA as Buffer);
    expect([info.width, info.height]).toEqual([96, 64]);
    expect(info.text.parameters).toBe(
      "a red fox, (snow:1.2)\nNegative prompt: blurry\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 42, Size: 96x64, Model: tiny-sdxl",
    );
    expect(bytesB?.equals(bytesA as Buffer)).toBe(true);
    expect(bytesC?.equals(bytesA as Buffer)).toBe(false);
  });

  it("an SD 1.x model without a scheduler kind runs its own PNDM, and the infotext says PLMS", async () => {
    // Copied in while the mesh runs: the inference service looks at MODELS_DIR again for a model it lacks.
    await ensureTinyModel(join(mesh.dir, "models", "tiny-sd15"), { kind: "sd15" });
    const clients = orchestratorClients(mesh.url);
    const run = (scheduler: Record<string, unknown>, out: string) =>
      runWorkflow(clients, {
        workflowId: "txt2img",
        spec: {
          size: { width: 64, height: 64 },
          scheduler: { steps: 4, ...scheduler },
          conditioning: { prompt: "a lighthouse" },
          params: { seed: 5n },
          models: { base: "tiny-sd15" },
        },
        out: join(mesh.dir, out),
      });
    const own = await run({}, "sd15.png");
    const plms = await run({ kind: SchedulerKind.PNDM }, "sd15-plms.png");
    const [ownBytes, plmsBytes] = [own, plms].map((r) => readFileSync(r.files[0] ?? ""));
    expect(pngInfo(ownBytes as Buffer).text.parameters).toBe(
      "a lighthouse\nSteps: 4, Sampler: PLMS, CFG scale: 7, Seed: 5, Size: 64x64, Model: tiny-sd15",
    );
    expect(pngInfo(plmsBytes as Buffer).text.parameters).toBe(pngInfo(ownBytes as Buffer).text.parameters);
  });

  it("runs the SDXL base + refiner workflow: the refiner finishes what the base started", async () => {
    const clients = orchestratorClients(mesh.url);
    const run = (refiner: string, out: string) =>
      runWorkflow(clients, {
        workflowId: refiner ? "sdxl-refiner" : "txt2img",
        spec: {
          size: { width: 64, height: 64 },
          scheduler: { steps: 10 },
          conditioning: { prompt: "a harbour at dawn" },
          params: { seed: 5n, ...(refiner ? { denoisingEnd: 0.8 } : {}) },
          models: { base: "tiny-sdxl", refiner },
        },
        out: join(mesh.dir, out),
      });
    const refined = await run("tiny-sdxl-refiner", "refined.png");
    const plain = await run("", "plain.png");
    expect(refined.session?.error).toBe("");
    const [a, b] = [refined, plain].map((r) => readFileSync(r.files[0] ?? ""));
    expect(pngInfo(a as Buffer).width).toBe(64);
    expect(a?.equals(b as Buffer)).toBe(false);
  });

  it("carries one request id through the logs of every hop", async () => {
    const requestId = `e2e-trace-${Date.now()}`;
    const clients = orchestratorClients(mesh.url);
    for await (const _ of clients.processing.executeWorkflow(
      { workflowId: "txt2img", spec: { ...SMALL, conditioning: { prompt: "a trace" } } },
      { headers: { "x-request-id": requestId } },
    )) {
      // drain until the session ends
    }
    // Each service's stdout reaches its log file through a pipe to this process: a line written as the
    // stream ended (the orchestrator's access line) can land a moment after the client saw the end.
    const logged = (service: string) =>
      readFileSync(join(mesh.dir, "logs", `${service}.log`), "utf8").includes(`"requestId":"${requestId}"`);
    for (const service of ["orchestrator", "inference", "postprocess"]) {
      for (let i = 0; i < 50 && !logged(service); i++) await new Promise((r) => setTimeout(r, 100));
      expect(logged(service), `${service}.log has the request id`).toBe(true);
    }
  });
});

describe("every service answers plain gRPC", () => {
  /** A bare @grpc/grpc-js client: protobuf bytes in, protobuf bytes out, no Connect code on the path. */
  function unary<I extends DescMessage, O extends DescMessage>(
    address: string,
    method: { parent: { typeName: string }; name: string; input: I; output: O },
    input: MessageInitShape<I>,
  ): Promise<MessageShape<O>> {
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        `/${method.parent.typeName}/${method.name}`,
        (m: MessageInitShape<I>) => Buffer.from(toBinary(method.input, create(method.input, m))),
        (b: Buffer) => fromBinary(method.output, b),
        input,
        (err, res) => {
          client.close();
          if (err) reject(err);
          else resolve(res as MessageShape<O>);
        },
      );
    });
  }

  it("reports SERVING on grpc.health.v1 for every process", async () => {
    for (const name of ["orchestrator", "inference", "postprocess", "device"] as const) {
      const res = await unary(mesh.address(name), Health.method.check, { service: "" });
      expect(res.status, name).toBe(Serving.SERVING);
    }
  });

  it("serves each domain's RPCs to a non-Connect client", async () => {
    const inference = mesh.address("inference");
    const devices = await unary(mesh.address("device"), DeviceService.method.listDevices, {});
    expect(devices.devices.some((d) => d.id === "cpu")).toBe(true);
    const models = await unary(inference, ModelService.method.listModels, {});
    expect(models.models.map((m) => m.id)).toContain("tiny-sdxl");
    const schedulers = await unary(inference, SchedulerService.method.listSchedulers, {});
    expect(schedulers.schedulers.map((s) => s.kind)).toContain(SchedulerKind.DPMPP_2M);
    const tokens = await unary(inference, ConditioningService.method.tokenize, {
      model: "tiny-sdxl",
      text: "a photo of a cat",
    });
    expect(tokens.tokenizers.map((t) => t.tokenizer)).toEqual(["tokenizer", "tokenizer_2"]);
    const queue = await unary(inference, InferenceService.method.getQueue, {});
    expect(queue.maxConcurrent).toBeGreaterThan(0);
    const encoded = await unary(mesh.address("postprocess"), PostprocessService.method.encode, {
      image: { encoding: 1, data: new Uint8Array(8 * 8 * 3).fill(200), width: 8, height: 8, channels: 3 },
    });
    expect(pngInfo(encoded.image?.data ?? new Uint8Array()).width).toBe(8);
    const workflows = await unary(mesh.address("orchestrator"), ProcessingService.method.listWorkflows, {});
    expect(workflows.workflows.map((w) => w.id)).toContain("txt2img");
    const status = await unary(mesh.address("orchestrator"), MeshService.method.getMeshStatus, {});
    expect(status.instructors.map((i) => i.health)).toEqual(["SERVING", "SERVING", "SERVING"]);
    const artifacts = await unary(mesh.address("orchestrator"), ArtifactService.method.listArtifacts, {
      sessionId: "none",
    });
    expect(artifacts.artifacts).toEqual([]);
  });

  const python = "/usr/bin/python3";
  const hasPythonGrpc = (() => {
    try {
      execFileSync(python, ["-c", "import grpc"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!hasPythonGrpc)(
    "lists its services by reflection to a Python grpcio client (skipped without Debian's python3-grpcio)",
    () => {
      const script = join(import.meta.dirname, "..", "support", "reflect.py");
      for (const [name, expected] of [
        [
          "orchestrator",
          [
            "dmesh.processing.v1.ProcessingService",
            "dmesh.processing.v1.MeshService",
            "grpc.health.v1.Health",
          ],
        ],
        [
          "inference",
          [
            "dmesh.inference.v1.InferenceService",
            "dmesh.model.v1.ModelService",
            "dmesh.scheduler.v1.SchedulerService",
          ],
        ],
        ["postprocess", ["dmesh.postprocess.v1.PostprocessService"]],
        ["device", ["dmesh.device.v1.DeviceService"]],
      ] as const) {
        const out = JSON.parse(
          execFileSync(python, [script, mesh.address(name)], { encoding: "utf8", timeout: 20_000 }),
        );
        expect(out.health, name).toBe("SERVING");
        for (const service of expected) expect(out.services, name).toContain(service);
        expect(out.described, name).toBeGreaterThan(0);
      }
    },
  );
});

describe("browsers and gateways: Connect over HTTP/1.1", () => {
  it("answers a JSON POST as a browser sends it", async () => {
    const res = await fetch(`${mesh.url}/dmesh.processing.v1.ProcessingService/ListWorkflows`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { workflows: { id: string }[] };
    expect(body.workflows.map((w) => w.id)).toContain("inpaint");
  });

  it("rejects a malformed JSON body with invalid_argument and keeps serving", async () => {
    const res = await fetch(`${mesh.url}/dmesh.processing.v1.ProcessingService/GetSession`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"sessionId": ',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });
});

describe("bad requests get a clear error naming the field, and every service stays up", () => {
  const cases: [string, object, Code, string][] = [
    ["empty prompt", { conditioning: { prompt: " " } }, Code.InvalidArgument, "spec.conditioning.prompt"],
    [
      "width not a multiple of 8",
      { size: { width: 100, height: 64 } },
      Code.InvalidArgument,
      "spec.size.width",
    ],
    ["steps 0", { scheduler: { steps: 0 } }, Code.InvalidArgument, "spec.scheduler.steps"],
    ["steps 10,000", { scheduler: { steps: 10_000 } }, Code.InvalidArgument, "spec.scheduler.steps"],
    ["unknown model", { models: { base: "no-such-model" } }, Code.NotFound, "models.base"],
  ];
  for (const [name, override, code, field] of cases) {
    it(name, async () => {
      const clients = orchestratorClients(mesh.url);
      const spec = { ...SMALL, conditioning: { prompt: "ok" }, ...override };
      const err = await (async () => {
        for await (const { event } of clients.processing.executeWorkflow({ workflowId: "txt2img", spec })) {
          if (event?.session?.error) throw new Error(event.session.error);
        }
      })().catch((e: unknown) => e);
      if (err instanceof ConnectError) {
        expect(Code[err.code]).toBe(Code[code]);
        expect(err.metadata.get("dmesh-field")).toBe(field);
      } else {
        // Errors found downstream (an unknown model is only known to inference) fail the session, naming the field.
        expect(code).toBe(Code.NotFound);
        expect(String((err as Error).message)).toContain(field);
      }
    });
  }

  it("an option the model's own scheduler lacks, given without a kind, is refused at submit: no session", async () => {
    await ensureTinyModel(join(mesh.dir, "models", "tiny-sd15"), { kind: "sd15" });
    const clients = orchestratorClients(mesh.url);
    const submit = (base: string) =>
      (async () => {
        for await (const { event } of clients.processing.executeWorkflow({
          workflowId: "txt2img",
          spec: {
            ...SMALL,
            conditioning: { prompt: "ok" },
            scheduler: { steps: 2, karrasSigmas: true },
            models: { base },
          },
        })) {
          if (event?.session?.error) throw new Error(event.session.error);
        }
      })().catch((e: unknown) => e);
    const before = (await clients.processing.listSessions({ pageSize: 1000 })).sessions.length;
    const refused = ConnectError.from(await submit("tiny-sd15"));
    expect(Code[refused.code]).toBe(Code[Code.InvalidArgument]);
    expect(refused.metadata.get("dmesh-field")).toBe("spec.scheduler.karras_sigmas");
    expect(refused.rawMessage).toContain(`model "tiny-sd15"'s own scheduler PLMS`);
    expect((await clients.processing.listSessions({ pageSize: 1000 })).sessions.length).toBe(before);
    // SDXL's own Euler takes Karras sigmas.
    expect(await submit("tiny-sdxl")).toBeUndefined();
    // A batch's items likewise, before the batch is made.
    const batch = await clients.processing
      .createBatch({
        workflowId: "txt2img",
        base: {
          ...SMALL,
          conditioning: { prompt: "ok" },
          scheduler: { steps: 2, karrasSigmas: true },
          models: { base: "tiny-sd15" },
        },
        axes: [{ field: "params.seed", valuesJson: ["1", "2"] }],
      })
      .catch((e: unknown) => ConnectError.from(e));
    expect(batch instanceof ConnectError && batch.metadata.get("dmesh-field")).toBe(
      "batch item 0.scheduler.karras_sigmas",
    );
  });

  it("a negative width is refused", async () => {
    const clients = orchestratorClients(mesh.url);
    const err = await (async () => {
      for await (const _ of clients.processing.executeWorkflow({
        workflowId: "txt2img",
        spec: { conditioning: { prompt: "x" }, size: { width: -8, height: 64 } },
      })) {
        // no events expected
      }
    })().catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
    expect(ConnectError.from(err).metadata.get("dmesh-field")).toBe("spec.size.width");
  });

  it("unknown workflow is NOT_FOUND naming workflow_id", async () => {
    const err = await orchestratorClients(mesh.url)
      .processing.getWorkflow({ workflowId: "nope" })
      .catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.NotFound);
    expect(ConnectError.from(err).metadata.get("dmesh-field")).toBe("workflow_id");
  });

  it("a bad request straight to inference is refused there too, and all four are still SERVING", async () => {
    const transport = createGrpcTransport({ address: mesh.address("inference") });
    const inference = createClient(InferenceService, transport);
    const err = await (async () => {
      for await (const _ of inference.generate({
        spec: {
          conditioning: { prompt: "x" },
          size: { width: 64, height: 64 },
          scheduler: { steps: 100_000 },
        },
      })) {
        // nothing
      }
    })().catch((e: unknown) => e);
    expect(ConnectError.from(err).metadata.get("dmesh-field")).toBe("spec.scheduler.steps");
    transport.close();
    for (const name of ["orchestrator", "inference", "postprocess", "device"] as const) {
      const t = createGrpcTransport({ address: mesh.address(name) });
      expect((await createClient(Health, t).check({ service: "" })).status, name).toBe(Serving.SERVING);
      t.close();
    }
  });
});
