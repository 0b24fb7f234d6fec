import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ModelIo, type TinyModelOptions, writeTinyModel } from "../src/index.js";
import { allFinite, idsTensor, ioOf, openSession, ort, readInitializers, tempDir, wave } from "./helpers.js";

// Every variant option changes only what it should, and every sub-model of every variant loads and runs.

/** Concrete sizes for the symbolic dims of each sub-model. */
const SIZES: Record<string, Record<string, number>> = {
  unet: { batch_size: 2, height: 6, width: 10, sequence_length: 77, steps: 1 },
  vae_encoder: { batch_size: 1, height: 48, width: 80 },
  vae_decoder: { batch_size: 1, latent_height: 6, latent_width: 10 },
  text_encoder: { batch_size: 2, sequence_length: 77 },
  text_encoder_2: { batch_size: 2, sequence_length: 77 },
};

function feedFor(io: ModelIo, sizes: Record<string, number>): ort.Tensor {
  const dims = io.dims.map((d) => {
    const n = typeof d === "number" ? d : sizes[d];
    if (n === undefined) throw new Error(`no size for ${io.name} dim ${d}`);
    return n;
  });
  const count = dims.reduce((a, b) => a * b, 1);
  if (io.name === "input_ids")
    return idsTensor(
      io.type,
      Array.from({ length: count }, (_, i) => 5 + (i % 77)),
      dims,
    );
  if (io.name === "timestep") {
    return io.type === "int64"
      ? new ort.Tensor("int64", new BigInt64Array(count).fill(999n), dims)
      : new ort.Tensor("float32", new Float32Array(count).fill(999), dims);
  }
  return new ort.Tensor("float32", wave(count), dims);
}

/** Generates `options`, loads every ONNX file, checks its I/O against the manifest and runs it. */
async function generateAndRun(dir: string, options: Partial<TinyModelOptions>) {
  const manifest = await writeTinyModel(dir, options);
  const outputs: Record<string, Record<string, ort.Tensor>> = {};
  for (const [path, signature] of Object.entries(manifest.models)) {
    const session = await openSession(join(dir, path));
    expect(ioOf(session.inputMetadata), path).toEqual(signature.inputs);
    expect(ioOf(session.outputMetadata), path).toEqual(signature.outputs);
    const sizes = SIZES[path.split("/")[0] as string] as Record<string, number>;
    const feeds = Object.fromEntries(signature.inputs.map((io) => [io.name, feedFor(io, sizes)]));
    const result = await session.run(feeds);
    for (const [name, tensor] of Object.entries(result))
      expect(allFinite(tensor), `${path} ${name}`).toBe(true);
    outputs[path] = result;
    await session.release();
  }
  const json = async (path: string) => JSON.parse(await readFile(join(dir, path), "utf8"));
  return { manifest, outputs, json };
}

describe("tiny model variants", () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;
  beforeAll(async () => {
    root = await tempDir("variants");
  });
  afterAll(() => root.remove());
  const run = (options: Partial<TinyModelOptions>) => generateAndRun(join(root.path, String(n++)), options);
  const inputsOf = (m: Awaited<ReturnType<typeof run>>["manifest"], path: string) =>
    m.models[path]?.inputs ?? [];
  const outputsOf = (m: Awaited<ReturnType<typeof run>>["manifest"], path: string) =>
    m.models[path]?.outputs ?? [];

  it("sdxl-refiner: only text_encoder_2, cross-attention over it, time_ids with the aesthetic score", async () => {
    const { manifest, outputs, json } = await run({ kind: "sdxl-refiner" });
    expect(Object.keys(manifest.models).sort()).toEqual([
      "text_encoder_2/model.onnx",
      "unet/model.onnx",
      "vae_decoder/model.onnx",
      "vae_encoder/model.onnx",
    ]);
    expect(manifest.files.some((f) => f.path.startsWith("tokenizer/"))).toBe(false);
    expect(inputsOf(manifest, "unet/model.onnx").map((io) => [io.name, io.dims])).toEqual([
      ["sample", ["batch_size", 4, "height", "width"]],
      ["timestep", ["steps"]],
      ["encoder_hidden_states", ["batch_size", "sequence_length", 64]],
      ["text_embeds", ["batch_size", 48]],
      ["time_ids", ["batch_size", 5]],
    ]);
    expect(outputs["unet/model.onnx"]?.out_sample?.dims).toEqual([2, 4, 6, 10]);
    expect(await json("model_index.json")).toMatchObject({
      _class_name: "StableDiffusionXLImg2ImgPipeline",
      requires_aesthetics_score: true,
      force_zeros_for_empty_prompt: false,
      text_encoder: [null, null],
      tokenizer: [null, null],
      text_encoder_2: ["transformers", "CLIPTextModelWithProjection"],
    });
    expect(await json("unet/config.json")).toMatchObject({
      projection_class_embeddings_input_dim: 48 + 5 * 8,
    });
  });

  it("sd15: one text encoder, a UNet without added conditioning, PNDM, the SD 1.x VAE scale", async () => {
    const { manifest, outputs, json } = await run({ kind: "sd15" });
    expect(Object.keys(manifest.models).sort()).toEqual([
      "text_encoder/model.onnx",
      "unet/model.onnx",
      "vae_decoder/model.onnx",
      "vae_encoder/model.onnx",
    ]);
    expect(inputsOf(manifest, "unet/model.onnx").map((io) => io.name)).toEqual([
      "sample",
      "timestep",
      "encoder_hidden_states",
    ]);
    expect(inputsOf(manifest, "unet/model.onnx")[2]?.dims).toEqual(["batch_size", "sequence_length", 32]);
    expect(outputs["vae_decoder/model.onnx"]?.sample?.dims).toEqual([1, 3, 48, 80]);
    expect((await json("scheduler/scheduler_config.json"))._class_name).toBe("PNDMScheduler");
    expect(await json("model_index.json")).toMatchObject({
      _class_name: "StableDiffusionPipeline",
      safety_checker: [null, null],
      requires_safety_checker: false,
      text_encoder: ["transformers", "CLIPTextModel"],
    });
    expect(await json("vae_decoder/config.json")).toMatchObject({ scaling_factor: 0.18215 });
    const unetConfig = await json("unet/config.json");
    expect(unetConfig).toMatchObject({
      addition_embed_type: null,
      cross_attention_dim: 32,
      use_linear_projection: false,
    });
    // SD 1.x projects in and out of the transformer with 1×1 convolutions.
    const init = await readInitializers(join(root.path, String(n - 1), "unet/model.onnx"));
    expect(init.get("mid_block.attentions.0.proj_in.weight")).toEqual([32, 32, 1, 1]);
    expect(init.has("add_embedding.linear_1.weight")).toBe(false);
  });

  it("sd2: a 1024-wide GELU text encoder padding with '!', linear projections, v-prediction DDIM, 768 native", async () => {
    const { manifest, json } = await run({ kind: "sd2" });
    expect(Object.keys(manifest.models)).not.toContain("text_encoder_2/model.onnx");
    expect(inputsOf(manifest, "unet/model.onnx")[2]?.dims).toEqual(["batch_size", "sequence_length", 1024]);
    expect(await json("scheduler/scheduler_config.json")).toMatchObject({
      _class_name: "DDIMScheduler",
      prediction_type: "v_prediction",
    });
    expect(await json("model_index.json")).toMatchObject({
      _class_name: "StableDiffusionPipeline",
      scheduler: ["diffusers", "DDIMScheduler"],
      text_encoder: ["transformers", "CLIPTextModel"],
    });
    expect(await json("text_encoder/config.json")).toMatchObject({ hidden_act: "gelu", hidden_size: 1024 });
    expect(await json("unet/config.json")).toMatchObject({
      cross_attention_dim: 1024,
      use_linear_projection: true,
      sample_size: 96,
    });
    expect(await json("tokenizer/special_tokens_map.json")).toMatchObject({ pad_token: "!" });
    expect(await json("vae_decoder/config.json")).toMatchObject({ scaling_factor: 0.18215 });
  });

  it("unetInChannels 9: an inpainting UNet that still predicts 4 channels", async () => {
    const { manifest, outputs, json } = await run({ unetInChannels: 9 });
    expect(inputsOf(manifest, "unet/model.onnx")[0]?.dims).toEqual(["batch_size", 9, "height", "width"]);
    expect(outputs["unet/model.onnx"]?.out_sample?.dims).toEqual([2, 4, 6, 10]);
    expect(await json("unet/config.json")).toMatchObject({ in_channels: 9, out_channels: 4 });
    expect((await json("model_index.json"))._class_name).toBe("StableDiffusionXLInpaintPipeline");
  });

  it("timestepType int64 and timestepShape scalar change only the timestep input", async () => {
    const int64 = await run({ timestepType: "int64" });
    expect(inputsOf(int64.manifest, "unet/model.onnx")[1]).toEqual({
      name: "timestep",
      type: "int64",
      dims: ["steps"],
    });
    const scalar = await run({ timestepShape: "scalar" });
    expect(inputsOf(scalar.manifest, "unet/model.onnx")[1]).toEqual({
      name: "timestep",
      type: "float32",
      dims: [],
    });
    // Same weights, same timestep value: the three forms agree.
    const base = await run({});
    const out = (r: typeof base) =>
      Array.from(r.outputs["unet/model.onnx"]?.out_sample?.data as Float32Array);
    expect(out(int64)).toEqual(out(base));
    expect(out(scalar)).toEqual(out(base));
  });

  it("inputIdsType int64 changes the text encoders' input dtype only", async () => {
    const { manifest, outputs } = await run({ inputIdsType: "int64" });
    for (const path of ["text_encoder/model.onnx", "text_encoder_2/model.onnx"]) {
      expect(inputsOf(manifest, path)).toEqual([
        { name: "input_ids", type: "int64", dims: ["batch_size", "sequence_length"] },
      ]);
    }
    expect(outputs["text_encoder_2/model.onnx"]?.text_embeds?.dims).toEqual([2, 48]);
  });

  it("vaeEncoderOutput latent_sample: the older 4-channel output", async () => {
    const { manifest, outputs } = await run({ vaeEncoderOutput: "latent_sample" });
    expect(outputsOf(manifest, "vae_encoder/model.onnx")).toEqual([
      { name: "latent_sample", type: "float32", dims: ["batch_size", 4, "height / 8", "width / 8"] },
    ]);
    expect(outputs["vae_encoder/model.onnx"]?.latent_sample?.dims).toEqual([1, 4, 6, 10]);
  });

  it("an old-style SD 1.5 inpainting export combines all the options", async () => {
    const { manifest } = await run({
      kind: "sd15",
      unetInChannels: 9,
      timestepType: "int64",
      inputIdsType: "int64",
      vaeEncoderOutput: "latent_sample",
      seed: 7,
    });
    expect(manifest.options).toEqual({
      kind: "sd15",
      seed: 7,
      unetInChannels: 9,
      timestepType: "int64",
      timestepShape: "vector",
      unetPrecision: "float32",
      inputIdsType: "int64",
      vaeEncoderOutput: "latent_sample",
    });
  });

  it("rejects bad options naming the field", async () => {
    await expect(writeTinyModel(join(root.path, "bad"), { kind: "sd3" as never })).rejects.toMatchObject({
      name: "TinyModelOptionError",
      field: "kind",
    });
    await expect(writeTinyModel(join(root.path, "bad"), { seed: -1 })).rejects.toMatchObject({
      field: "seed",
    });
    await expect(
      writeTinyModel(join(root.path, "bad"), { unetInChannels: 8 as never }),
    ).rejects.toMatchObject({
      field: "unetInChannels",
    });
  });
});
