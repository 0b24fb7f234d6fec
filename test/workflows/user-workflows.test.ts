import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { WorkflowSchema } from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { ensureTinyModel, writeTinySafetyClassifier, writeTinyUpscaler } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { artifactBytes, collect, tinySpec, waitFinished } from "../faults/support/sessions.js";
import { TestMesh } from "../faults/support/test-mesh.js";
import { pngInfo } from "../support/png-info.js";

// User-defined workflows through the real mesh: real processes on loopback, the tiny SDXL model, a tiny
// super-resolution model and a tiny safety classifier (real ONNX graphs). The classifier flags every image
// (threshold 0) and the mesh's default policy rejects them.
let models: string;
let mesh: TestMesh;

type WorkflowInit = MessageInitShape<typeof WorkflowSchema>;

/** generate → hires (the tiny x2 SR model, scale from an input) → safety (`policy`) → encode. */
function srChain(policy: string): WorkflowInit {
  return {
    id: "sr-chain",
    name: "Generate, hires with an SR model, safety, encode",
    categories: ["generation"],
    inputs: [
      { name: "spec", type: "spec", required: true },
      { name: "scale", type: "integer", defaultValue: { kind: { case: "numberValue", value: 2 } } },
    ],
    steps: [
      { id: "generate", kind: "generate", inputs: { spec: "input.spec" } },
      {
        id: "hires",
        kind: "hires",
        inputs: { spec: "input.spec", image: "generate.images", scale: "input.scale" },
        params: { upscaler: "tiny-x2", strength: 0.4, steps: 5 },
      },
      { id: "safety", kind: "safety", inputs: { image: "hires.images" }, params: { policy } },
      {
        id: "encode",
        kind: "encode",
        inputs: { image: "safety.images", spec: "input.spec" },
        params: { format: "png" },
      },
    ],
  };
}

beforeAll(async () => {
  models = mkdtempSync(join(tmpdir(), "dmesh-workflow-models-"));
  await writeTinyUpscaler(join(models, "upscale", "tiny-x2"), { scale: 2, seed: 7 });
  await writeTinySafetyClassifier(join(models, "safety"), { seed: 9 });
  mesh = await TestMesh.start({
    orchestratorEnv: { MAX_CONCURRENT_SESSIONS: "1" },
    postprocessEnv: {
      UPSCALE_MODELS_DIR: join(models, "upscale"),
      SAFETY_MODEL_DIR: join(models, "safety"),
      SAFETY_POLICY: "reject",
      SAFETY_THRESHOLD: "0",
    },
  });
  await ensureTinyModel(join(mesh.modelsDir, "tiny-sdxl-refiner"), { kind: "sdxl-refiner", seed: 7 });
}, 120_000);
afterAll(async () => {
  await mesh?.stop();
  rmSync(models, { recursive: true, force: true });
});

async function run(workflowId: string, seed: number) {
  const events = await collect(
    mesh.clients.processing.executeWorkflow(
      { workflowId, spec: tinySpec({ seed, steps: 2 }) },
      { timeoutMs: 60_000 },
    ),
  );
  const session = events.at(-1)?.session;
  if (!session) throw new Error("no session");
  return session;
}

/** Submits a session that keeps running without this stream: its first event, then the stream is closed. */
async function submitDetached(workflowId: string, seed: number, steps: number) {
  const stream = mesh.clients.processing
    .executeWorkflow({ workflowId, spec: tinySpec({ seed, steps }), detach: true })
    [Symbol.asyncIterator]();
  const first = await stream.next();
  await stream.return?.();
  return first.value?.event?.session;
}

/** generate → (refine with the tiny refiner) → safety (flag: this mesh rejects every image otherwise) → encode. */
function refineChain(refine: boolean): WorkflowInit {
  const source = refine ? "refine" : "generate";
  return {
    id: refine ? "refine-chain" : "plain-chain",
    name: refine ? "Generate, refine, encode" : "Generate, encode",
    inputs: [{ name: "spec", type: "spec", required: true }],
    steps: [
      { id: "generate", kind: "generate", inputs: { spec: "input.spec" } },
      ...(refine
        ? [
            {
              id: "refine",
              kind: "refine",
              inputs: { spec: "input.spec", image: "generate.images" },
              params: { model: "tiny-sdxl-refiner", strength: 0.5, steps: 4 },
            },
          ]
        : []),
      { id: "safety", kind: "safety", inputs: { image: `${source}.images` }, params: { policy: "flag" } },
      { id: "encode", kind: "encode", inputs: { image: "safety.images", spec: "input.spec" } },
    ],
  };
}

describe("a user-defined workflow", () => {
  it("runs a refine step with the refiner model named in its parameters, over the generated image", async () => {
    await mesh.clients.processing.createWorkflow({ workflow: refineChain(true) });
    await mesh.clients.processing.createWorkflow({ workflow: refineChain(false) });
    const refined = await run("refine-chain", 31);
    const plain = await run("plain-chain", 31);
    for (const session of [refined, plain]) {
      expect(session.error).toBe("");
      expect(SessionState[session.state]).toBe("COMPLETED");
      expect(session.artifactIds).toHaveLength(1);
    }
    expect(refined.timings.map((t) => t.stepId)).toEqual(["generate", "refine", "safety", "encode"]);
    const a = await artifactBytes(mesh.clients, refined.artifactIds[0] ?? "");
    const b = await artifactBytes(mesh.clients, plain.artifactIds[0] ?? "");
    expect(pngInfo(a).width).toBe(64);
    // The refiner's img2img pass changed the generated image.
    expect(a.equals(b)).toBe(false);
  });

  it("chains generate → hires with an SR model → safety → encode through the mesh, and records each in the image", async () => {
    const { workflow } = await mesh.clients.processing.createWorkflow({ workflow: srChain("flag") });
    expect([workflow?.version, workflow?.builtin, workflow?.requiredModels]).toEqual([
      1,
      false,
      ["base", "upscaler"],
    ]);
    const session = await run("sr-chain", 21);
    expect(session.error).toBe("");
    expect(SessionState[session.state]).toBe("COMPLETED");
    expect(session.workflowVersion).toBe(1);
    expect(session.timings.map((t) => t.stepId)).toEqual(["generate", "hires", "safety", "encode"]);
    expect(session.artifactIds).toHaveLength(1);
    const png = pngInfo(await artifactBytes(mesh.clients, session.artifactIds[0] ?? ""));
    // 64 px generated, 128 px after the x2 SR model and the img2img pass at that size.
    expect([png.width, png.height]).toEqual([128, 128]);
    const infotext = png.text.parameters ?? "";
    expect(infotext).toMatch(/Safety: flagged \d\.\d\d/);
    expect(infotext).toContain("Safety model: safety");
    expect(infotext).toContain("Hires upscale: 2");
    expect(infotext).toContain("Hires upscaler: tiny-x2");
    expect(infotext).toContain("Denoising strength: 0.4");
    expect(infotext).toContain("Size: 128x128");
  });

  it("is refused at its path when malformed, and so are inputs out of the range of the parameter they bind", async () => {
    const bad = srChain("flag");
    bad.id = "bad-chain";
    (bad.steps ?? [])[1] = { ...(bad.steps ?? [])[1], params: { upscaler: "tiny-x2", strength: 1.5 } };
    const err = await mesh.clients.processing
      .createWorkflow({ workflow: bad })
      .catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toBe("steps[1].params.strength: must be in [0, 1], got 1.5");
    const input = await collect(
      mesh.clients.processing.executeWorkflow({
        workflowId: "sr-chain",
        spec: tinySpec(),
        inputs: { scale: { kind: { case: "numberValue", value: 3 } } },
      }),
    ).catch((e) => ConnectError.from(e));
    expect((input as ConnectError).code).toBe(Code.InvalidArgument);
    expect((input as ConnectError).rawMessage).toBe("inputs.scale: must be one of 1, 2, 4, got 3");
    const builtin = await mesh.clients.processing
      .deleteWorkflow({ workflowId: "txt2img" })
      .catch((e) => ConnectError.from(e));
    expect((builtin as ConnectError).code).toBe(Code.FailedPrecondition);
  });

  it("keeps the version a session started with after an update; the next session runs the new one, which rejects", async () => {
    // One session at a time: a blocker holds the slot while the chain waits, queued with version 1.
    const first = await submitDetached("sr-chain", 1, 12);
    const v1 = await submitDetached("sr-chain", 22, 2);
    expect(v1?.workflowVersion).toBe(1);
    const { workflow } = await mesh.clients.processing.updateWorkflow({ workflow: srChain("reject") });
    expect(workflow?.version).toBe(2);

    const kept = await waitFinished(mesh.clients, v1?.id ?? "", 60_000);
    expect([
      SessionState[kept.state],
      kept.workflowVersion,
      kept.artifactIds.length,
      kept.rejections.length,
    ]).toEqual(["COMPLETED", 1, 1, 0]);
    await waitFinished(mesh.clients, first?.id ?? "", 60_000);

    // Version 2 rejects: the image is not stored and not handed back, and the session says why.
    const rejected = await run("sr-chain", 23);
    expect([SessionState[rejected.state], rejected.workflowVersion, rejected.artifactIds]).toEqual([
      "COMPLETED",
      2,
      [],
    ]);
    expect(rejected.rejections.map((r) => [r.stepId, r.imageIndex])).toEqual([["safety", 0]]);
    expect(rejected.rejections[0]?.reason).toMatch(
      /^rejected by the safety policy: classifier "safety" scored it/,
    );
    const listed = await mesh.clients.processing.listSessions({ states: [SessionState.COMPLETED] });
    expect(listed.sessions.find((s) => s.id === rejected.id)?.artifactIds).toEqual([]);
  });

  it("applies the tenant's policy where the safety step names none: the mesh's reject", async () => {
    const tenantPolicy = srChain("tenant");
    tenantPolicy.id = "tenant-chain";
    await mesh.clients.processing.createWorkflow({ workflow: tenantPolicy });
    const session = await run("tenant-chain", 24);
    expect([SessionState[session.state], session.artifactIds]).toEqual(["COMPLETED", []]);
    expect(session.rejections[0]?.reason).toContain("rejected by the safety policy");
    const { workflows } = await mesh.clients.processing.listWorkflows({});
    const chain = workflows.find((w) => w.id === "sr-chain");
    expect([chain?.version, chain?.usageCount, chain?.categories]).toEqual([2, 4, ["generation"]]);
    // Estimates: after these runs the duration is measured, with the models and memory a session needs.
    const estimated = await mesh.clients.processing.getWorkflow({
      workflowId: "sr-chain",
      spec: tinySpec({ steps: 2 }),
    });
    const estimate = estimated.workflow?.estimate;
    expect(estimate?.estimateSource).toBe("measured");
    expect(estimate?.estimatedSeconds).toBeGreaterThan(0);
    expect(estimate?.models).toEqual(["tiny-sdxl", "tiny-x2"]);
    expect(estimate?.activationBytes).toBeGreaterThan(0n);
    await mesh.clients.processing.deleteWorkflow({ workflowId: "tenant-chain" });
    const gone = await mesh.clients.processing
      .getWorkflow({ workflowId: "tenant-chain" })
      .catch((e) => ConnectError.from(e));
    expect((gone as ConnectError).code).toBe(Code.NotFound);
  });
});
