import { execFile } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { AdapterKind, ModelFamily, ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { writeTinyEmbedding, writeTinyLora } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeControlNetSignature } from "../../services/inference/test/adapters/support.js";
import { keysFile, outcome, scratchDir, tenant } from "../door/support/door-mesh.js";
import { TestMesh } from "../faults/support/test-mesh.js";

const CLI = fileURLToPath(new URL("../../packages/cli/dist/main.js", import.meta.url));
const user = tenant("acme");
const ops = tenant("ops", true);
const scratch = scratchDir();
let mesh: TestMesh;

/** ModelService and ConditioningService of the orchestrator, as a gRPC client with `key` (if any) sends them. */
function publicClients(key?: string) {
  const transport = createGrpcTransport({
    address: mesh.orchestrator.address,
    ...(key ? { headers: { authorization: `Bearer ${key}` } } : {}),
  });
  return {
    models: createClient(ModelService, transport),
    conditioning: createClient(ConditioningService, transport),
    close: () => transport.close(),
  };
}

/** Runs the dmesh CLI against the orchestrator; killed if it outlives a minute. */
function dmesh(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args, "--url", `http://${mesh.orchestrator.address}`],
      { timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A 64×64 RGB image with a bright square: canny finds its edges. */
function squareImage() {
  const data = new Uint8Array(64 * 64 * 3).fill(10);
  for (let y = 16; y < 48; y++)
    for (let x = 16; x < 48; x++) data.fill(240, (y * 64 + x) * 3, (y * 64 + x) * 3 + 3);
  return { encoding: ImageEncoding.RAW, data, width: 64, height: 64, channels: 3 };
}

beforeAll(async () => {
  mesh = await TestMesh.start({
    inferenceReplicas: 2,
    orchestratorEnv: { API_KEYS_FILE: scratch.write("api-keys", keysFile([user, ops])) },
    apiKey: ops.key,
  });
  // Both replicas read MODELS_DIR; the listing scans it at each call.
  for (const dir of ["loras", "embeddings"]) mkdirSync(join(mesh.modelsDir, dir));
  await writeTinyLora(join(mesh.modelsDir, "loras", "ink.safetensors"), { layout: "kohya-sdxl" });
  await writeTinyEmbedding(join(mesh.modelsDir, "embeddings", "easy.safetensors"), { kind: "sdxl" });
  await writeControlNetSignature(join(mesh.modelsDir, "controlnet", "canny-xl"), 2048);
}, 120_000);
afterAll(async () => {
  await mesh?.stop();
  scratch.remove();
});

describe("the model listing through the orchestrator's public port", () => {
  it("lists models and adapters to any valid key, and to no caller without one", async () => {
    const acme = publicClients(user.key);
    try {
      const { models } = await acme.models.listModels({});
      expect(models.map((m) => [m.id, m.family])).toEqual([["tiny-sdxl", ModelFamily.SDXL]]);
      expect((await acme.models.getModel({ id: "tiny-sdxl" })).model?.nativeSize).toBeGreaterThan(0);
      const { adapters } = await acme.models.listAdapters({});
      expect(adapters.map((a) => [a.name, a.kind, a.family])).toEqual([
        ["canny-xl", AdapterKind.CONTROLNET, ModelFamily.SDXL],
        ["easy", AdapterKind.EMBEDDING, ModelFamily.SDXL],
        ["ink", AdapterKind.LORA, ModelFamily.SDXL],
      ]);
      const loras = await acme.models.listAdapters({ kind: AdapterKind.LORA });
      expect(loras.adapters.map((a) => a.name)).toEqual(["ink"]);
      // The replica's answer about the request keeps its code and field.
      expect(await outcome(() => acme.models.getModel({ id: "nope" }))).toMatchObject({
        code: "NotFound",
        field: "id",
      });
    } finally {
      acme.close();
    }
    for (const key of [undefined, "dmesh_wrong_key"]) {
      const anonymous = publicClients(key);
      try {
        for (const call of [
          () => anonymous.models.listModels({}),
          () => anonymous.models.listAdapters({}),
          () => anonymous.conditioning.preprocessControl({ image: squareImage() }),
        ])
          expect(await outcome(call)).toMatchObject({ code: "Unauthenticated" });
      } finally {
        anonymous.close();
      }
    }
  });

  it("keeps LoadModel, UnloadModel, Tokenize and EncodePrompt inside the mesh", async () => {
    const admin = publicClients(ops.key);
    try {
      expect(await outcome(() => admin.models.loadModel({ id: "tiny-sdxl" }))).toMatchObject({
        code: "Unimplemented",
      });
      expect(await outcome(() => admin.models.unloadModel({ id: "tiny-sdxl" }))).toMatchObject({
        code: "Unimplemented",
      });
      expect(await outcome(() => admin.conditioning.tokenize({ text: "a cat" }))).toMatchObject({
        code: "Unimplemented",
      });
    } finally {
      admin.close();
    }
  });

  it("previews a control map, and passes a bad preprocessor back naming the field", async () => {
    const acme = publicClients(user.key);
    try {
      const res = await acme.conditioning.preprocessControl({
        image: squareImage(),
        preprocessor: { name: "canny", resolution: 64, thresholdA: 100, thresholdB: 200 },
        outputEncoding: ImageEncoding.RAW,
      });
      const map = res.controlMap;
      expect([map?.width, map?.height, map?.channels]).toEqual([64, 64, 3]);
      expect(map?.data.filter((v) => v === 255).length).toBeGreaterThan(100);
      const bad = await outcome(() =>
        acme.conditioning.preprocessControl({
          image: squareImage(),
          preprocessor: { name: "depth-anything" },
        }),
      );
      expect(bad).toMatchObject({ code: "InvalidArgument", field: "preprocessor.name" });
    } finally {
      acme.close();
    }
  });

  it("dmesh models prints models first, then adapters; --kind filters", async () => {
    const all = await dmesh(["models", "--api-key", user.key]);
    expect(all.stderr).toBe("");
    expect(all.code).toBe(0);
    const lines = all.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^name\s+kind\s+family\s+hash\s+size$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ["tiny-sdxl", "model", "sdxl"],
      ["canny-xl", "controlnet", "sdxl"],
      ["easy", "embedding", "sdxl"],
      ["ink", "lora", "sdxl"],
    ]);
    expect(lines[4]).toMatch(/^ink\s+lora\s+sdxl\s+[0-9a-f]{12}\s+[\d.]+ KiB$/);
    const loras = await dmesh(["models", "--kind", "lora", "--api-key", user.key]);
    expect(loras.stdout.trimEnd().split("\n").slice(1)).toEqual([expect.stringMatching(/^ink\s+lora/)]);
    const wrong = await dmesh(["models", "--kind", "vae", "--api-key", user.key]);
    expect([wrong.code, wrong.stderr]).toEqual([
      2,
      'dmesh models: --kind must be one of model, lora, embedding, controlnet, got "vae"\n',
    ]);
    const anonymous = await dmesh(["models"]);
    expect([anonymous.code, anonymous.stderr]).toEqual([
      1,
      expect.stringMatching(/^dmesh: Unauthenticated: /),
    ]);
  });

  it("answers from the other replica when one is gone", async () => {
    await mesh.inference[0]?.kill("SIGKILL");
    const acme = publicClients(user.key);
    try {
      // Whichever replica each call picks first, the dead one is passed over (marked down on the way).
      for (let i = 0; i < 3; i++)
        expect((await acme.models.listAdapters({ kind: AdapterKind.EMBEDDING })).adapters).toHaveLength(1);
    } finally {
      acme.close();
    }
  });
});
