import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromJson, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { ControlNetUnitSchema } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { type Image, ImageEncoding, ImageSchema } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  SafetyPolicy,
  SafetyResultSchema,
  UpscaleKernel,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import type { Session } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { createLogger, DEFAULT_TENANT } from "@dmesh/runtime";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ReplicaPool } from "../src/clients/replica-pool.js";
import { type RunControl, type RunnerDeps, runSession } from "../src/sessions/session-runner.js";
import type { StepMesh } from "../src/sessions/steps/step-context.js";
import { ArtifactStore } from "../src/store/artifact-store.js";
import { type Db, openDatabase } from "../src/store/database.js";
import { newSession, type SessionStore } from "../src/store/session-store.js";
import { SqliteArtifactIndex } from "../src/store/sqlite-artifact-index.js";
import { SqliteSessionStore } from "../src/store/sqlite-session-store.js";
import { SqliteStepTimingStore } from "../src/store/sqlite-step-timing-store.js";
import { estimateDuration, recordTiming } from "../src/workflows/duration-estimate.js";
import { compileWorkflow } from "../src/workflows/validate-definition.js";
import type { CatalogEntry } from "../src/workflows/workflow-catalog.js";
import type {
  InputDeclaration,
  StepDefinition,
  WorkflowDefinition,
} from "../src/workflows/workflow-definition.js";

// The executor over a fake mesh: every call a step makes is recorded, and images are tagged bytes, so
// what flows along which edge can be read off. The stores are real (SQLite in a temp dir).
const logger = createLogger("test", "silent");
let dir: string;
let db: Db;
let store: SessionStore;
let artifacts: ArtifactStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-executor-"));
  db = openDatabase(join(dir, "db.sqlite"));
  store = new SqliteSessionStore(db);
  artifacts = new ArtifactStore(new SqliteArtifactIndex(db), join(dir, "artifacts"));
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const tagged = (tag: string, size = 64): Image =>
  create(ImageSchema, { encoding: ImageEncoding.PNG, data: Buffer.from(tag), width: size, height: size });
const tagOf = (image: Image) => Buffer.from(image.data).toString();

/** Records calls; safety scores each image by whether its tag contains "bad". */
class FakeMesh implements StepMesh {
  readonly calls: string[] = [];
  private generations = 0;
  async generate(spec: Parameters<StepMesh["generate"]>[0]) {
    const n = this.generations++;
    const from = spec.initImage ? tagOf(spec.initImage) : "noise";
    for (const unit of spec.controlNets)
      this.calls.push(
        `control ${unit.model} ${unit.image ? tagOf(unit.image) : "-"} ${unit.preprocessor?.name ?? "-"}`,
      );
    this.calls.push(`generate ${from} strength=${spec.params?.strength ?? "-"} seed=${spec.params?.seed}`);
    const size = spec.size?.width ?? 64;
    const count = spec.output?.count || 1;
    return {
      images: Array.from({ length: count }, (_, i) => tagged(`gen${n}.${i}(${from})`, size)),
      seeds: Array.from({ length: count }, (_, i) => (spec.params?.seed ?? 0n) + BigInt(i)),
      model: "tiny-sdxl",
      infotext: [],
    };
  }
  async upscale(image: Image, upscale: Parameters<StepMesh["upscale"]>[1]) {
    this.calls.push(
      `upscale ${tagOf(image)} x${upscale.factor} ${upscale.kernel === UpscaleKernel.MODEL ? upscale.model : "lanczos"}`,
    );
    return tagged(`up(${tagOf(image)})`, image.width * (upscale.factor ?? 1));
  }
  async enhance(image: Image) {
    return tagged(`enh(${tagOf(image)})`, image.width);
  }
  async checkSafety(image: Image, policy: SafetyPolicy) {
    const bad = tagOf(image).includes("gen0.1");
    const action = !bad
      ? "passed"
      : policy === SafetyPolicy.REJECT
        ? "rejected"
        : policy === SafetyPolicy.BLUR
          ? "blurred"
          : "flagged";
    this.calls.push(`safety ${tagOf(image)} ${SafetyPolicy[policy]} → ${action}`);
    const result = create(SafetyResultSchema, {
      action,
      score: bad ? 0.9 : 0.1,
      classifier: "tiny",
      threshold: 0.5,
      flagged: bad,
    });
    return action === "blurred"
      ? { result, image: tagged(`blur(${tagOf(image)})`, image.width) }
      : { result };
  }
  async preprocessControl(image: Image) {
    return tagged(`canny(${tagOf(image)})`);
  }
  readonly encoded: { tag: string; infotext: Record<string, string>; safety: boolean }[] = [];
  async process(req: Parameters<StepMesh["process"]>[0]) {
    const image = req.image as Image;
    this.encoded.push({ tag: tagOf(image), infotext: { ...req.parameters?.extra }, safety: true });
    return tagged(`png(${tagOf(image)})`);
  }
  async encode(req: Parameters<StepMesh["encode"]>[0]) {
    const image = req.image as Image;
    this.encoded.push({ tag: tagOf(image), infotext: { ...req.parameters?.extra }, safety: false });
    return tagged(`png(${tagOf(image)})`);
  }
}

const step = (
  id: string,
  kind: string,
  inputs: Record<string, string>,
  params: StepDefinition["params"] = {},
): StepDefinition => ({
  id,
  kind,
  inputs,
  params,
  dependsOn: [],
});

function entry(steps: StepDefinition[], more: InputDeclaration[] = []): CatalogEntry {
  const definition: WorkflowDefinition = {
    id: "w",
    name: "w",
    description: "",
    categories: [],
    inputs: [
      { name: "spec", type: "spec", required: true, description: "" },
      { name: "scale", type: "integer", required: false, description: "", default: 2 },
      ...more,
    ],
    steps,
  };
  return { definition, version: 1, builtin: false, compiled: compileWorkflow(definition) };
}

async function run(
  workflow: CatalogEntry,
  mesh: FakeMesh,
  inputs: Record<string, number> = {},
  extra: Partial<RunnerDeps> = {},
  images: Record<string, Image> = {},
  controlNets: MessageInitShape<typeof ControlNetUnitSchema>[] = [],
): Promise<Session> {
  const session = newSession({
    id: "s1",
    tenant: DEFAULT_TENANT,
    workflowId: "w",
    workflowVersion: 1,
    spec: create(GenerationSpecSchema, {
      conditioning: { prompt: "a lighthouse" },
      size: { width: 64, height: 64 },
      params: { seed: 100n, strength: 0.75 },
      output: { count: 2 },
      controlNets,
    }),
    inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, fromJson(ValueSchema, v)])),
  });
  await store.create(
    session,
    Object.fromEntries(
      Object.entries(images).map(([k, image]) => [
        k,
        create(ImageInputSchema, { source: { case: "image", value: image } }),
      ]),
    ),
  );
  const control: RunControl = {
    abort: new AbortController(),
    pauseRequested: false,
    cancelRequested: false,
    replica: undefined,
  };
  const deps: RunnerDeps = {
    store,
    artifacts,
    inference: undefined as unknown as ReplicaPool<never>,
    postprocess: undefined as unknown as ReplicaPool<never>,
    logger,
    checkpointIntervalSteps: 1,
    maxAttempts: 1,
    retryBackoffMs: 1,
    callTimeoutMs: 1000,
    streamIdleTimeoutMs: 1000,
    commit: () => {},
    stepMesh: () => mesh,
    ...extra,
  } as unknown as RunnerDeps;
  expect(await runSession(session, workflow, control, deps)).toBe("completed");
  return session;
}

describe("the workflow executor", () => {
  it("walks generate → hires (SR model, scale from an input) → safety → encode, each step on its predecessor's images", async () => {
    const mesh = new FakeMesh();
    const session = await run(
      entry([
        step("encode", "encode", { image: "safety.images", spec: "input.spec" }),
        step("safety", "safety", { image: "hires.images" }, { policy: "flag" }),
        step(
          "hires",
          "hires",
          { spec: "input.spec", image: "generate.images", scale: "input.scale" },
          { upscaler: "tiny-x2", strength: 0.4 },
        ),
        step("generate", "generate", { spec: "input.spec" }),
      ]),
      mesh,
      { scale: 4 },
    );
    expect(mesh.calls).toEqual([
      "generate noise strength=0.75 seed=100",
      "upscale gen0.0(noise) x4 tiny-x2",
      "upscale gen0.1(noise) x4 tiny-x2",
      // One img2img per upscaled image, with the seed that made it.
      "generate up(gen0.0(noise)) strength=0.4 seed=100",
      "generate up(gen0.1(noise)) strength=0.4 seed=101",
      "safety gen1.0(up(gen0.0(noise))) FLAG → passed",
      "safety gen2.0(up(gen0.1(noise))) FLAG → flagged",
    ]);
    expect(session.timings.map((t) => t.stepId)).toEqual(["generate", "hires", "safety", "encode"]);
    expect(session.artifactIds).toHaveLength(2);
    // Judged by the safety step: encoded without a policy of its own, the verdict and the hires pass noted.
    expect(
      mesh.encoded.map((e) => [e.tag, e.safety, e.infotext.Safety, e.infotext["Hires upscaler"]]),
    ).toEqual([
      ["gen1.0(up(gen0.0(noise)))", false, "passed 0.10", "tiny-x2"],
      ["gen2.0(up(gen0.1(noise)))", false, "flagged 0.90", "tiny-x2"],
    ]);
    expect(mesh.encoded[1]?.infotext["Denoising strength"]).toBe("0.4");
  });

  it("drops a rejected image: not encoded, not stored, the session says which and why", async () => {
    const mesh = new FakeMesh();
    const session = await run(
      entry([
        step("generate", "generate", { spec: "input.spec" }),
        step("safety", "safety", { image: "generate.images" }, { policy: "reject" }),
        step("encode", "encode", { image: "safety.images" }),
      ]),
      mesh,
    );
    expect(mesh.encoded.map((e) => e.tag)).toEqual(["gen0.0(noise)"]);
    expect(session.artifactIds).toHaveLength(1);
    expect(session.rejections.map((r) => [r.stepId, r.imageIndex])).toEqual([["safety", 1]]);
    expect(session.rejections[0]?.reason).toContain(
      'rejected by the safety policy: classifier "tiny" scored it 0.900',
    );
  });

  it("blurs, fans out and encodes without a safety step under the tenant's policy", async () => {
    const mesh = new FakeMesh();
    await run(
      entry([
        step("generate", "generate", { spec: "input.spec" }),
        step("safety", "safety", { image: "generate.images" }, { policy: "blur" }),
        step("more", "fan_out", { image: "safety.images" }, { copies: 2 }),
        step("vary", "generate", { spec: "input.spec", image: "more.images" }, { strength: 0.3 }),
        step("encode", "encode", { image: "vary.images" }),
        step("raw", "encode", { image: "generate.images" }, { format: "webp" }),
      ]),
      mesh,
    );
    // Four variants, one image each: each of the two images twice (the blurred one blurred), each copy with
    // its own seed. New images: encode applies the tenant's policy to them, as to the unjudged originals.
    expect(mesh.calls.filter((c) => c.startsWith("generate gen") || c.startsWith("generate blur"))).toEqual([
      "generate gen0.0(noise) strength=0.3 seed=100",
      "generate gen0.0(noise) strength=0.3 seed=101",
      "generate blur(gen0.1(noise)) strength=0.3 seed=102",
      "generate blur(gen0.1(noise)) strength=0.3 seed=103",
    ]);
    expect(mesh.encoded.every((e) => e.safety)).toBe(true);
    expect(mesh.encoded.map((e) => e.tag)).toEqual([
      "gen1.0(gen0.0(noise))",
      "gen2.0(gen0.0(noise))",
      "gen3.0(blur(gen0.1(noise)))",
      "gen4.0(blur(gen0.1(noise)))",
      "gen0.0(noise)",
      "gen0.1(noise)",
    ]);
  });

  it("gives the session an ETA from the measured estimate before its first step reports, and measures each step", async () => {
    const timings = new SqliteStepTimingStore(db);
    const workflow = entry([
      step("generate", "generate", { spec: "input.spec" }),
      step("encode", "encode", { image: "generate.images" }),
    ]);
    const shape = { model: "", width: 64, height: 64, steps: 20, scheduler: 0, count: 2 };
    await recordTiming(timings, workflow.definition.steps[0] as StepDefinition, shape, 3);
    await recordTiming(timings, workflow.definition.steps[1] as StepDefinition, shape, 1);
    const etas: [string, number][] = [];
    await run(
      workflow,
      new FakeMesh(),
      {},
      {
        timings,
        commit: (s) => {
          etas.push([s.currentStep, s.etaSeconds]);
        },
      },
    );
    // 3 s for generate and 1 s for encode measured: 4 s before the first step, 1 s before the last.
    expect(etas[0]).toEqual(["generate", 4]);
    expect(etas.find(([stepId]) => stepId === "encode")).toEqual(["encode", 1]);
    // This run's own durations (the fake mesh is quick) joined the measurements.
    const after = await estimateDuration(workflow.definition, shape, timings);
    expect(after.source).toBe("measured");
    expect(after.seconds).toBeLessThan(4);
  });

  it("runs ControlNet preprocessing as a step: the control maps reach the spec's units, already preprocessed", async () => {
    const mesh = new FakeMesh();
    const workflow = entry(
      [
        step("edges", "control", { image: "input.photo" }, { preprocessor: "canny" }),
        step("generate", "generate", { spec: "input.spec", control: "edges.images" }),
        step("encode", "encode", { image: "generate.images" }),
      ],
      [{ name: "photo", type: "image", required: true, description: "" }],
    );
    await run(workflow, mesh, {}, {}, { photo: tagged("photo") }, [
      { model: "tiny-canny", preprocessor: { name: "canny" } },
    ]);
    expect(mesh.calls).toEqual([
      "control tiny-canny canny(photo) -",
      "generate noise strength=0.75 seed=100",
    ]);
  });
});
