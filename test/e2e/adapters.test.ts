import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { orchestratorClients } from "@dmesh/cli/clients";
import { runWorkflow } from "@dmesh/cli/run-workflow";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { readOnnxModel, writeOnnxModel } from "@dmesh/onnx";
import { createGrpcTransport } from "@dmesh/runtime";
import { type TinyLoraOptions, tinyLoraEntries, writeTinyEmbedding, writeTinyLora } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pngInfo } from "../support/png-info.js";
import { pngPixels } from "../support/png-pixels.js";
import { startTestMesh, type TestMesh } from "../support/test-mesh.js";

// LoRA tags of two naming families at once (kohya-ss SDXL and diffusers/PEFT), one weight negative,
// through every hop, against the same tiny model with those LoRAs merged into its weights by hand below.

let mesh: TestMesh;

const INK: TinyLoraOptions = { layout: "kohya-sdxl", dtype: "F32", strength: 2, seed: 5 };
const PEFT_INK: TinyLoraOptions = { layout: "peft", dtype: "F32", strength: 2, seed: 9 };
const WEIGHTS = { ink: 0.8, peft_ink: -0.6 };

/**
 * W += weight · (alpha/rank or 1) · up·down for every module the LoRA adapts, in the model's own initializers
 * (`<module>.weight`, PyTorch layout [out, in]), written from the definition and nothing of the project's
 * merge code.
 */
async function mergeByHand(modelDir: string, lora: TinyLoraOptions, weight: number): Promise<void> {
  const byComponent = new Map<string, ReturnType<typeof tinyLoraEntries>>();
  for (const entry of tinyLoraEntries(lora)) {
    const list = byComponent.get(entry.module.component) ?? [];
    list.push(entry);
    byComponent.set(entry.module.component, list);
  }
  for (const [component, entries] of byComponent) {
    const file = join(modelDir, component, "model.onnx");
    const proto = await (await readOnnxModel(file)).toProto();
    for (const { module, down, up, alpha } of entries) {
      const tensor = proto.graph?.initializer.find((t) => t.name === `${module.path}.weight`);
      if (!tensor) throw new Error(`${component} has no ${module.path}.weight`);
      const w = new Float32Array(tensor.rawData.slice().buffer);
      const rank = down.shape[0] as number;
      const scale = weight * (alpha ? (alpha.data[0] as number) / rank : 1);
      const cols = down.data.length / rank;
      const rows = up.data.length / rank;
      for (let o = 0; o < rows; o++)
        for (let j = 0; j < cols; j++) {
          let sum = 0;
          for (let r = 0; r < rank; r++)
            sum += (up.data[o * rank + r] as number) * (down.data[r * cols + j] as number);
          w[o * cols + j] = (w[o * cols + j] as number) + scale * sum;
        }
      tensor.rawData = new Uint8Array(w.buffer);
    }
    await writeOnnxModel(file, proto);
  }
}

beforeAll(async () => {
  mesh = await startTestMesh({ MAX_LOADED_MODELS: "4" });
  const models = join(mesh.dir, "models");
  mkdirSync(join(models, "loras"));
  mkdirSync(join(models, "embeddings"));
  await writeTinyLora(join(models, "loras", "ink.safetensors"), INK);
  await writeTinyLora(join(models, "loras", "peft_ink.safetensors"), PEFT_INK);
  await writeTinyEmbedding(join(models, "embeddings", "shiny.safetensors"), { kind: "sdxl" });
  const merged = join(models, "tiny-merged");
  cpSync(join(models, "tiny-sdxl"), merged, { recursive: true });
  await mergeByHand(merged, INK, WEIGHTS.ink);
  await mergeByHand(merged, PEFT_INK, WEIGHTS.peft_ink);
}, 180_000);

afterAll(async () => {
  await mesh?.dispose();
});

const SPEC = { size: { width: 64, height: 64 }, scheduler: { steps: 4 }, params: { seed: 21n } };

async function generatePng(prompt: string, model: string, out: string): Promise<Buffer> {
  const run = await runWorkflow(orchestratorClients(mesh.url), {
    workflowId: "txt2img",
    spec: { ...SPEC, conditioning: { prompt }, models: { base: model } },
    out: join(mesh.dir, out),
  });
  expect(run.session?.error).toBe("");
  return readFileSync(run.files[0] ?? "");
}

function maxLevelDifference(a: Buffer, b: Buffer): number {
  const [x, y] = [pngPixels(a).rgb, pngPixels(b).rgb];
  expect(x.length).toBe(y.length);
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs((x[i] as number) - (y[i] as number)));
  return max;
}

describe("LoRAs through the mesh", () => {
  it("kohya-ss and PEFT tags, one negative, make the image of the model with both merged by hand", async () => {
    const tagged = await generatePng(
      `a fox in the snow <lora:ink:${WEIGHTS.ink}> <lora:peft_ink:${WEIGHTS.peft_ink}>`,
      "tiny-sdxl",
      "tagged.png",
    );
    const merged = await generatePng("a fox in the snow", "tiny-merged", "merged.png");
    const plain = await generatePng("a fox in the snow", "tiny-sdxl", "plain.png");
    const difference = maxLevelDifference(tagged, merged);
    console.log(
      `[adapters] tags vs hand-merged: max ${difference} levels; vs plain: ${maxLevelDifference(tagged, plain)}`,
    );
    expect(difference).toBeLessThanOrEqual(3);
    // The LoRAs do change the image: the comparison above is not between two plain images.
    expect(maxLevelDifference(tagged, plain)).toBeGreaterThan(3);

    // The infotext keeps the tags and names each LoRA by A1111's hash, and ReadMetadata reads it back.
    const infotext = pngInfo(tagged).text.parameters ?? "";
    const addnet = (file: string) => {
      const bytes = readFileSync(join(mesh.dir, "models", "loras", file));
      const header = Number(bytes.readBigUInt64LE(0));
      return createHash("sha256")
        .update(bytes.subarray(8 + header))
        .digest("hex")
        .slice(0, 12);
    };
    const loraHashes = `ink: ${addnet("ink.safetensors")}, peft_ink: ${addnet("peft_ink.safetensors")}`;
    expect(infotext.split("\n")[0]).toBe(
      `a fox in the snow <lora:ink:${WEIGHTS.ink}> <lora:peft_ink:${WEIGHTS.peft_ink}>`,
    );
    expect(infotext).toContain(`Lora hashes: "${loraHashes}"`);
    const transport = createGrpcTransport({ address: mesh.address("postprocess") });
    const postprocess = createClient(PostprocessService, transport);
    const read = await postprocess.readMetadata({ image: { encoding: ImageEncoding.PNG, data: tagged } });
    expect(read.parameters?.prompt).toBe(infotext.split("\n")[0]);
    expect(read.parameters?.extra["Lora hashes"]).toBe(loraHashes);
  });

  it("an embedding named in the prompt changes the image and is written as TI hashes", async () => {
    const withEmbedding = await generatePng("a fox, shiny", "tiny-sdxl", "shiny.png");
    const without = await generatePng("a fox, shin", "tiny-sdxl", "shin.png");
    expect(maxLevelDifference(withEmbedding, without)).toBeGreaterThan(3);
    const file = readFileSync(join(mesh.dir, "models", "embeddings", "shiny.safetensors"));
    const hash = createHash("sha256").update(file).digest("hex").slice(0, 12);
    const infotext = pngInfo(withEmbedding).text.parameters ?? "";
    expect(infotext).toContain(`TI hashes: "shiny: ${hash}"`);
    const transport = createGrpcTransport({ address: mesh.address("postprocess") });
    const read = await createClient(PostprocessService, transport).readMetadata({
      image: { encoding: ImageEncoding.PNG, data: withEmbedding },
    });
    expect(read.parameters?.extra["TI hashes"]).toBe(`shiny: ${hash}`);
  });

  it("an unknown LoRA fails the session with NOT_FOUND naming it", async () => {
    const run = await runWorkflow(orchestratorClients(mesh.url), {
      workflowId: "txt2img",
      spec: { ...SPEC, conditioning: { prompt: "a fox <lora:nowhere:1>" } },
      out: join(mesh.dir, "missing.png"),
    });
    expect(run.session?.error).toMatch(/no LoRA "nowhere"/);
  });
});
