import { type TensorToWrite, writeSafetensors } from "@dmesh/safetensors";
import { tinyEmbeddingTensors } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AdapterFileError,
  embeddingVectorsFor,
  readEmbeddingFile,
  textEncoderWidths,
} from "../../src/adapters/index.js";
import { tempDir, tinyTarget } from "./support.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir("embeddings");
});
afterAll(async () => {
  await dir.remove();
});

async function written(name: string, tensors: readonly TensorToWrite[]): Promise<string> {
  const path = dir.file(name);
  await writeSafetensors(path, tensors);
  return path;
}

const vectors = (name: string, shape: number[], fill = 0.5): TensorToWrite => ({
  name,
  dtype: "F32",
  shape,
  data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => fill + i / 1000),
});

describe("textual-inversion embeddings", () => {
  it("reads the tiny model's widths from its modules", () => {
    expect(textEncoderWidths(tinyTarget("sdxl"))).toEqual({ text_encoder: 32, text_encoder_2: 64 });
    expect(textEncoderWidths(tinyTarget("sd15"))).toEqual({ text_encoder: 32 });
    expect(textEncoderWidths(tinyTarget("sdxl-refiner"))).toEqual({ text_encoder_2: 64 });
  });

  it("SD 1.x emb_params: one vector set for the one text encoder", async () => {
    const tensors = tinyEmbeddingTensors({ kind: "sd15", vectors: 3 });
    const embedding = await readEmbeddingFile(await written("tiny-sd15.safetensors", tensors));
    expect(embedding.vectorCount).toBe(3);
    const fit = embeddingVectorsFor(embedding, textEncoderWidths(tinyTarget("sd15")));
    expect(Object.keys(fit)).toEqual(["text_encoder"]);
    expect(fit.text_encoder?.count).toBe(3);
    expect(fit.text_encoder?.width).toBe(32);
    expect([...(fit.text_encoder?.data ?? [])]).toEqual([...(tensors[0] as TensorToWrite).data]);
  });

  it("SDXL clip_l and clip_g: one set per text encoder; the refiner takes clip_g", async () => {
    const tensors = tinyEmbeddingTensors({ kind: "sdxl", vectors: 2 });
    const embedding = await readEmbeddingFile(await written("tiny-sdxl.safetensors", tensors));
    expect(embedding.family).toBe("sdxl");
    const both = embeddingVectorsFor(embedding, textEncoderWidths(tinyTarget("sdxl")));
    const byName = new Map(tensors.map((t) => [t.name, t.data]));
    expect([...(both.text_encoder?.data ?? [])]).toEqual([...(byName.get("clip_l") ?? [])]);
    expect([...(both.text_encoder_2?.data ?? [])]).toEqual([...(byName.get("clip_g") ?? [])]);
    const refiner = embeddingVectorsFor(embedding, textEncoderWidths(tinyTarget("sdxl-refiner")));
    expect(Object.keys(refiner)).toEqual(["text_encoder_2"]);
  });

  it("tells the base family by widths and structure", async () => {
    const cases: [TensorToWrite[], string][] = [
      [[vectors("emb_params", [2, 768])], "sd1"],
      [[vectors("<cat-toy>", [768])], "sd1"],
      [[vectors("emb_params", [1, 1024])], "sd2"],
      [[vectors("clip_l", [4, 768]), vectors("clip_g", [4, 1280])], "sdxl"],
      [[vectors("emb_params", [1, 32])], "unknown"],
    ];
    for (const [tensors, family] of cases) {
      expect((await readEmbeddingFile(await written("family.safetensors", tensors))).family).toBe(family);
    }
  });

  it("refuses an embedding of the wrong width for the model, naming the file", async () => {
    const sd15 = await readEmbeddingFile(
      await written("sd15-on-sdxl.safetensors", tinyEmbeddingTensors({ kind: "sd15" })),
    );
    expect(() => embeddingVectorsFor(sd15, textEncoderWidths(tinyTarget("sdxl")))).toThrow(
      "sd15-on-sdxl.safetensors: is an embedding (one vector set 32 wide); this model has text encoders 32 and 64 wide",
    );
    const real = await readEmbeddingFile(
      await written("real-sd1.safetensors", [vectors("emb_params", [2, 768])]),
    );
    expect(() => embeddingVectorsFor(real, textEncoderWidths(tinyTarget("sd15")))).toThrow(
      "real-sd1.safetensors: is an SD 1.x embedding (one vector set 768 wide); this model has one text encoder 32 wide",
    );
    const sdxl = await readEmbeddingFile(
      await written("sdxl-on-sd15.safetensors", tinyEmbeddingTensors({ kind: "sdxl" })),
    );
    expect(() => embeddingVectorsFor(sdxl, textEncoderWidths(tinyTarget("sd15")))).toThrow(
      "sdxl-on-sd15.safetensors: is an SDXL embedding (clip_l 32 and clip_g 64 wide); this model has one text encoder 32 wide",
    );
    const wrongG = await readEmbeddingFile(
      await written("wrong-g.safetensors", [vectors("clip_l", [1, 32]), vectors("clip_g", [1, 1280])]),
    );
    expect(() => embeddingVectorsFor(wrongG, textEncoderWidths(tinyTarget("sdxl")))).toThrow(
      AdapterFileError,
    );
  });

  it("refuses files that are no usable embedding, naming the file and key", async () => {
    const cases: [TensorToWrite[], string][] = [
      [
        [vectors("a", [1, 32]), vectors("b", [1, 32])],
        "two.safetensors: is not a textual-inversion embedding: expected emb_params (one tensor) or clip_l and clip_g, found 2 tensors",
      ],
      [
        [vectors("clip_l", [2, 32]), vectors("clip_g", [3, 64])],
        'two.safetensors: "clip_g": holds 3 vectors but clip_l holds 2',
      ],
      [
        [vectors("clip_l", [1, 32]), vectors("clip_g", [1, 64]), vectors("x", [1])],
        'two.safetensors: "x": an SDXL embedding holds clip_l and clip_g only',
      ],
      [
        [vectors("emb_params", [76, 32])],
        'two.safetensors: "emb_params": holds 76 vectors of width 32; 1 to 75 vectors fit a prompt',
      ],
      [
        [vectors("emb_params", [1, 2, 32])],
        'two.safetensors: "emb_params": shape [1, 2, 32] is not [vectors, width] or [width]',
      ],
      [
        [vectors("emb_params", [2, 32], Number.NaN)],
        'two.safetensors: "emb_params": holds a value that is not finite',
      ],
    ];
    for (const [tensors, message] of cases) {
      await expect(readEmbeddingFile(await written("two.safetensors", tensors))).rejects.toThrow(message);
    }
    await expect(readEmbeddingFile(dir.file("learned_embeds.bin"))).rejects.toThrow(
      /learned_embeds\.bin: is a pickled PyTorch checkpoint/,
    );
  });
});
