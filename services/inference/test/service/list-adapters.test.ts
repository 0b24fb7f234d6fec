import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdapterKind, ModelFamily } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { writeSafetensors } from "@dmesh/safetensors";
import { tinyEmbeddingTensors, tinyLoraTensors } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeControlNetSignature } from "../adapters/support.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

let service: TestInference;
let lorasDir: string;

beforeAll(async () => {
  // LoRAs from LORAS_DIR, outside MODELS_DIR; embeddings and ControlNets from MODELS_DIR.
  lorasDir = await mkdtemp(join(tmpdir(), "dmesh-loras-"));
  await writeSafetensors(join(lorasDir, "style.safetensors"), tinyLoraTensors({ layout: "kohya-sdxl" }));
  service = await startTestInference({}, { LORAS_DIR: lorasDir }, async (modelsDir) => {
    await mkdir(join(modelsDir, "embeddings"));
    await writeSafetensors(
      join(modelsDir, "embeddings", "easy.safetensors"),
      tinyEmbeddingTensors({ kind: "sdxl" }),
    );
    await writeControlNetSignature(join(modelsDir, "controlnet", "canny"), 2048);
    // Under MODELS_DIR/loras, which LORAS_DIR replaces: not listed.
    await mkdir(join(modelsDir, "loras"));
    await writeSafetensors(
      join(modelsDir, "loras", "hidden.safetensors"),
      tinyLoraTensors({ layout: "kohya-sdxl" }),
    );
  });
});
afterAll(async () => {
  await service?.close();
  await rm(lorasDir, { recursive: true, force: true });
});

describe("ModelService.ListAdapters", () => {
  it("lists LoRAs (from LORAS_DIR), embeddings and ControlNets with kind, family, hash and size", async () => {
    const { adapters } = await service.models.listAdapters({});
    expect(adapters.map((a) => [a.name, a.kind, a.family])).toEqual([
      ["canny", AdapterKind.CONTROLNET, ModelFamily.SDXL],
      ["easy", AdapterKind.EMBEDDING, ModelFamily.SDXL],
      ["style", AdapterKind.LORA, ModelFamily.SDXL],
    ]);
    for (const a of adapters) {
      expect(a.shortHash).toMatch(a.kind === AdapterKind.CONTROLNET ? /^[0-9a-f]{8}$/ : /^[0-9a-f]{12}$/);
      expect(a.fileBytes).toBeGreaterThan(0n);
    }
  });

  it("filters by kind", async () => {
    const only = async (kind: AdapterKind) =>
      (await service.models.listAdapters({ kind })).adapters.map((a) => a.name);
    expect(await only(AdapterKind.LORA)).toEqual(["style"]);
    expect(await only(AdapterKind.EMBEDDING)).toEqual(["easy"]);
    expect(await only(AdapterKind.CONTROLNET)).toEqual(["canny"]);
  });

  it("refuses an unknown kind, naming the field", async () => {
    await expect(service.models.listAdapters({ kind: 42 as AdapterKind })).rejects.toMatchObject({
      code: 3,
      rawMessage: "kind: unknown adapter kind 42",
    });
  });
});
