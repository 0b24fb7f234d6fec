import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { decodeSafetensors, encodeSafetensors } from "@dmesh/safetensors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type TinyLoraOptions,
  tinyAdapterDims,
  tinyAdapterModules,
  tinyEmbeddingTensors,
  tinyLoraEntries,
  tinyLoraTensors,
  writeTinyModel,
} from "../src/index.js";
import { readInitializers, tempDir } from "./helpers.js";

let root: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  root = await tempDir("adapters");
});
afterAll(() => root?.remove());

const EMBEDDINGS = /embeddings\.(token|position)_embedding\.weight$/;

describe("the tiny model's adaptable modules", () => {
  for (const kind of ["sdxl", "sd15", "sdxl-refiner"] as const) {
    it(`are exactly the Linear and Conv2d weights of the ${kind} ONNX graphs, in PyTorch layout`, async () => {
      const dir = join(root.path, kind);
      await writeTinyModel(dir, { kind });
      const modules = tinyAdapterModules(tinyAdapterDims(kind));
      for (const component of ["unet", "text_encoder", "text_encoder_2"] as const) {
        const ours = modules.filter((m) => m.component === component);
        let initializers: Map<string, number[]>;
        try {
          initializers = await readInitializers(join(dir, component, "model.onnx"));
        } catch {
          expect(ours).toEqual([]); // the model has no such component
          continue;
        }
        const weights = [...initializers].filter(
          ([name, dims]) =>
            name.endsWith(".weight") && (dims.length === 2 || dims.length === 4) && !EMBEDDINGS.test(name),
        );
        expect(new Map(ours.map((m) => [`${m.path}.weight`, [...m.shape]]))).toEqual(new Map(weights));
      }
    });
  }
});

describe("tiny adapters", () => {
  it("are the same bytes for the same options, other bytes for another seed", () => {
    const bytes = (options: TinyLoraOptions) => Buffer.from(encodeSafetensors(tinyLoraTensors(options)));
    const a = bytes({ layout: "locon", seed: 1 });
    expect(bytes({ layout: "locon", seed: 1 }).equals(a)).toBe(true);
    expect(bytes({ layout: "locon", seed: 2 }).equals(a)).toBe(false);
  });

  it("name modules as each layout does", () => {
    const first = (options: TinyLoraOptions) => tinyLoraEntries(options).map((e) => e.down.name);
    expect(first({ layout: "kohya-sd1" })).toContain(
      "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
    );
    expect(first({ layout: "kohya-sd1" })).toContain(
      "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
    );
    // layers_per_block 1: input block 3 is down block 1's first layer; 2: input block 4.
    expect(first({ layout: "kohya-sdxl" })).toContain(
      "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q.lora_down.weight",
    );
    expect(first({ layout: "kohya-sdxl", layersPerBlock: 2 })).toContain(
      "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight",
    );
    expect(first({ layout: "kohya-sdxl" })).toContain(
      "lora_te2_text_model_encoder_layers_2_mlp_fc2.lora_down.weight",
    );
    expect(first({ layout: "locon" })).toContain("lora_unet_output_blocks_1_2_conv.lora_down.weight");
    expect(first({ layout: "peft" })).toContain(
      "text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj.lora_A.weight",
    );
    expect(first({ layout: "diffusers-old" })).toContain(
      "mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_out_lora.down.weight",
    );
    const locon = tinyLoraEntries({ layout: "locon" });
    const conv = locon.find((e) => e.module.path === "down_blocks.0.resnets.0.conv1");
    expect(conv?.down.shape).toEqual([4, 16, 3, 3]);
    expect(conv?.up.shape).toEqual([16, 4, 1, 1]);
  });

  it("embeddings: emb_params for SD 1.x, clip_l and clip_g for SDXL", async () => {
    expect(tinyEmbeddingTensors({ kind: "sd15", vectors: 3 }).map((t) => [t.name, t.shape])).toEqual([
      ["emb_params", [3, 32]],
    ]);
    expect(tinyEmbeddingTensors({ kind: "sdxl" }).map((t) => [t.name, t.shape])).toEqual([
      ["clip_g", [2, 64]],
      ["clip_l", [2, 32]],
    ]);
  });

  it("dmesh-tiny-model --artifact lora|embedding writes them", async () => {
    const main = join(import.meta.dirname, "../dist/main.js");
    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, [main, ...args], { timeout: 30_000 });
    const dir = join(root.path, "cli");
    const { stdout } = await run(
      dir,
      "--artifact",
      "lora",
      "--layout",
      "kohya-sdxl",
      "--layers-per-block",
      "2",
    );
    expect(stdout).toMatch(/^wrote .*tiny-kohya-sdxl\.safetensors: \d+ bytes, sha256 [0-9a-f]{16}\n$/);
    const file = await decodeSafetensors(
      "x",
      new Uint8Array(await readFile(join(dir, "tiny-kohya-sdxl.safetensors"))),
    );
    expect(file.tensors.has("lora_unet_input_blocks_4_1_proj_in.lora_down.weight")).toBe(true);
    expect(file.metadata).toEqual({ "dmesh.tiny_lora.layout": "kohya-sdxl", "dmesh.tiny_lora.kind": "sdxl" });
    await run(dir, "--artifact", "embedding", "--kind", "sd15", "--name", "my-emb");
    const emb = await decodeSafetensors("y", new Uint8Array(await readFile(join(dir, "my-emb.safetensors"))));
    expect([...emb.tensors.keys()]).toEqual(["emb_params"]);
    await expect(run(dir, "--artifact", "lora", "--layout", "nope")).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        "layout must be one of kohya-sd1, kohya-sdxl, locon, peft, diffusers-old",
      ),
    });
    await expect(
      run(dir, "--artifact", "lora", "--layout", "kohya-sd1", "--kind", "sdxl"),
    ).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringContaining("layout kohya-sd1 is for kind sd15"),
    });
  });
});
