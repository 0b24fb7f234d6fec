import { writeFile } from "node:fs/promises";
import { type TensorToWrite, writeSafetensors } from "@dmesh/safetensors";
import { tinyEmbeddingTensors, tinyLoraTensors } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeAdapterFile } from "../../src/adapters/index.js";
import { tempDir } from "./support.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir("listing");
});
afterAll(async () => {
  await dir.remove();
});

/** A file built byte by byte: an 8-byte length, the header text, the data given as hex. */
function rawFile(header: string, dataHex: string): Uint8Array {
  const json = new TextEncoder().encode(header);
  const data = Uint8Array.from(dataHex.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const Q = "lora_te_text_model_encoder_layers_0_self_attn_q_proj";
const LORA_HEADER = JSON.stringify({
  __metadata__: { ss_network_dim: "2" },
  [`${Q}.lora_down.weight`]: { dtype: "F16", shape: [2, 3], data_offsets: [0, 12] },
  [`${Q}.lora_up.weight`]: { dtype: "F16", shape: [3, 2], data_offsets: [12, 24] },
  [`${Q}.alpha`]: { dtype: "F32", shape: [], data_offsets: [24, 28] },
});
// struct.pack("<6e", .5, -1, 2, .25, 3, -.125) + struct.pack("<6e", 1, 2, 3, 4, 5, 6) + struct.pack("<f", 1)
const LORA_DATA = "003800bc00400034004200b0003c004000420044004500460000803f";

describe("A1111's hashes, against values computed independently", () => {
  // Computed with Python's hashlib from the same bytes: A1111's addnet_hash_safetensors (modules/hashes.py)
  // for the LoRA, hashlib.sha256 of the whole file for the embedding.
  it("LoRA: SHA-256 of the bytes after the header, 12 hex digits shown", async () => {
    const path = dir.file("style.safetensors");
    const bytes = rawFile(LORA_HEADER, LORA_DATA);
    await writeFile(path, bytes);
    expect(await describeAdapterFile(path, "lora")).toEqual({
      name: "style",
      kind: "lora",
      family: "unknown",
      sha256: "d083c99b6cecc235b4f4f82d90925c79de2a7349dbca766dd980561a968dbd5f",
      shortHash: "d083c99b6cec",
      bytes: bytes.length,
      size: 1,
    });
    // The metadata is not hashed: a file that differs only there has the same hash.
    const other = dir.file("renamed.safetensors");
    await writeFile(other, rawFile(LORA_HEADER.replace('"2"', '"8"'), LORA_DATA));
    expect((await describeAdapterFile(other)).shortHash).toBe("d083c99b6cec");
  });

  it("LoRA: kohya-ss' stored sshs_model_hash wins, as in A1111", async () => {
    const stored = "AB".repeat(32);
    const path = dir.file("stored.safetensors");
    await writeFile(
      path,
      rawFile(LORA_HEADER.replace('"ss_network_dim":"2"', `"sshs_model_hash":"${stored}"`), LORA_DATA),
    );
    const info = await describeAdapterFile(path);
    expect(info.sha256).toBe(stored.toLowerCase());
    expect(info.shortHash).toBe("abababababab");
  });

  it("embedding: SHA-256 of the whole file", async () => {
    const path = dir.file("easy.safetensors");
    // struct.pack("<8f", 1, 2, 3, 4, -1, -2, -3, -4)
    const bytes = rawFile(
      '{"emb_params":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}}',
      "0000803f000000400000404000008040000080bf000000c0000040c0000080c0",
    );
    await writeFile(path, bytes);
    expect(await describeAdapterFile(path, "embedding")).toEqual({
      name: "easy",
      kind: "embedding",
      family: "unknown",
      sha256: "b89242cb005655aed77118f17732b328565a8fdf102f5ca29e1038c19ebc3492",
      shortHash: "b89242cb0056",
      bytes: bytes.length,
      size: 2,
    });
  });
});

describe("listing", () => {
  const f32 = (name: string, shape: number[]): TensorToWrite => ({
    name,
    dtype: "F32",
    shape,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
  });
  const pair = (stem: string, inputs: number): TensorToWrite[] => [
    f32(`${stem}.lora_down.weight`, [4, inputs]),
    f32(`${stem}.lora_up.weight`, [320, 4]),
  ];

  it("tells a LoRA's base model by its shapes, then by kohya-ss metadata", async () => {
    const toK = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k";
    const cases: [TensorToWrite[], Record<string, string> | undefined, string][] = [
      [pair(toK, 768), undefined, "sd1"],
      [pair(toK, 1024), undefined, "sd2"],
      [pair(toK, 2048), undefined, "sdxl"],
      [pair("lora_unet_input_blocks_4_1_proj_in", 640), undefined, "sdxl"],
      [pair("lora_te2_text_model_encoder_layers_0_mlp_fc1", 1280), undefined, "sdxl"],
      [
        [
          f32("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.lora_A.weight", [4, 2048]),
          f32("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.lora_B.weight", [640, 4]),
        ],
        undefined,
        "sdxl",
      ],
      [pair("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 768), undefined, "sd1"],
      [
        pair("lora_unet_down_blocks_0_resnets_0_conv1", 320),
        { ss_base_model_version: "sdxl_base_v1-0" },
        "sdxl",
      ],
      [pair("lora_unet_down_blocks_0_resnets_0_conv1", 320), { ss_v2: "True" }, "sd2"],
      [pair("lora_unet_down_blocks_0_resnets_0_conv1", 320), undefined, "unknown"],
    ];
    for (const [tensors, metadata, family] of cases) {
      const path = dir.file("family.safetensors");
      await writeSafetensors(path, tensors, metadata);
      expect((await describeAdapterFile(path)).family, tensors[0]?.name).toBe(family);
    }
  });

  it("describes the tiny model's adapters", async () => {
    const lora = dir.file("tiny-kohya-sdxl.safetensors");
    await writeSafetensors(lora, tinyLoraTensors({ layout: "kohya-sdxl" }));
    const info = await describeAdapterFile(lora);
    expect(info).toMatchObject({ name: "tiny-kohya-sdxl", kind: "lora", family: "sdxl" });
    expect(info.shortHash).toMatch(/^[0-9a-f]{12}$/);
    const embedding = dir.file("tiny-emb.safetensors");
    await writeSafetensors(embedding, tinyEmbeddingTensors({ kind: "sdxl", vectors: 3 }));
    expect(await describeAdapterFile(embedding)).toMatchObject({
      kind: "embedding",
      family: "sdxl",
      size: 3,
    });
  });

  it("refuses a file found where the other kind belongs, and pickles", async () => {
    const embedding = dir.file("misplaced.safetensors");
    await writeSafetensors(embedding, tinyEmbeddingTensors({ kind: "sd15" }));
    await expect(describeAdapterFile(embedding, "lora")).rejects.toThrow(
      "misplaced.safetensors: is an embedding, not a LoRA",
    );
    const pickle = dir.file("old.pt");
    await writeFile(pickle, Uint8Array.from([0x80, 0x02, 0x8a, 0x0a]));
    await expect(describeAdapterFile(pickle)).rejects.toThrow("old.pt: is a pickled PyTorch checkpoint");
  });
});
