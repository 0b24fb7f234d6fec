import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type TinyModelManifest, writeTinyModel } from "../src/index.js";
import {
  allFinite,
  floats,
  floatTensor,
  idsTensor,
  ioOf,
  maxAbsDiff,
  openSession,
  type ort,
  readInitializers,
  tempDir,
  wave,
} from "./helpers.js";

// The default tiny model (SDXL): its files, each sub-model's exact I/O contract, and that each graph
// computes what the model it imitates computes.

const seq = ["batch_size", "sequence_length"];
const hidden = (n: number, width: number) =>
  Array.from({ length: n + 1 }, (_, i) => ({
    name: `hidden_states.${i}`,
    type: "float32",
    dims: [...seq, width],
  }));

const EXPECTED_IO = {
  "text_encoder/model.onnx": {
    inputs: [{ name: "input_ids", type: "int32", dims: seq }],
    outputs: [
      { name: "last_hidden_state", type: "float32", dims: [...seq, 32] },
      { name: "pooler_output", type: "float32", dims: ["batch_size", 32] },
      ...hidden(2, 32),
    ],
  },
  "text_encoder_2/model.onnx": {
    inputs: [{ name: "input_ids", type: "int32", dims: seq }],
    outputs: [
      { name: "text_embeds", type: "float32", dims: ["batch_size", 48] },
      { name: "last_hidden_state", type: "float32", dims: [...seq, 64] },
      ...hidden(3, 64),
    ],
  },
  "unet/model.onnx": {
    inputs: [
      { name: "sample", type: "float32", dims: ["batch_size", 4, "height", "width"] },
      { name: "timestep", type: "float32", dims: ["steps"] },
      { name: "encoder_hidden_states", type: "float32", dims: [...seq, 96] },
      { name: "text_embeds", type: "float32", dims: ["batch_size", 48] },
      { name: "time_ids", type: "float32", dims: ["batch_size", 6] },
    ],
    outputs: [{ name: "out_sample", type: "float32", dims: ["batch_size", 4, "height", "width"] }],
  },
  "vae_decoder/model.onnx": {
    inputs: [
      { name: "latent_sample", type: "float32", dims: ["batch_size", 4, "latent_height", "latent_width"] },
    ],
    outputs: [
      { name: "sample", type: "float32", dims: ["batch_size", 3, "latent_height * 8", "latent_width * 8"] },
    ],
  },
  "vae_encoder/model.onnx": {
    inputs: [{ name: "sample", type: "float32", dims: ["batch_size", 3, "height", "width"] }],
    outputs: [
      { name: "latent_parameters", type: "float32", dims: ["batch_size", 8, "height / 8", "width / 8"] },
    ],
  },
};

describe("the default tiny SDXL model", () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let manifest: TinyModelManifest;
  const sessions: Record<string, ort.InferenceSession> = {};
  let vocab: Record<string, number>;

  beforeAll(async () => {
    dir = await tempDir("sdxl");
    manifest = await writeTinyModel(dir.path);
    for (const path of Object.keys(EXPECTED_IO)) sessions[path] = await openSession(join(dir.path, path));
    vocab = JSON.parse(await readFile(join(dir.path, "tokenizer/vocab.json"), "utf8"));
  });
  afterAll(() => dir.remove());

  const json = async (path: string) => JSON.parse(await readFile(join(dir.path, path), "utf8"));
  const session = (path: keyof typeof EXPECTED_IO) => sessions[path] as ort.InferenceSession;

  it("has the optimum SDXL layout, a few MB in all", () => {
    expect(manifest.files.map((f) => f.path)).toEqual([
      "model_index.json",
      "scheduler/scheduler_config.json",
      "text_encoder/config.json",
      "text_encoder/model.onnx",
      "text_encoder_2/config.json",
      "text_encoder_2/model.onnx",
      "tokenizer/merges.txt",
      "tokenizer/special_tokens_map.json",
      "tokenizer/tokenizer_config.json",
      "tokenizer/vocab.json",
      "tokenizer_2/merges.txt",
      "tokenizer_2/special_tokens_map.json",
      "tokenizer_2/tokenizer_config.json",
      "tokenizer_2/vocab.json",
      "unet/config.json",
      "unet/model.onnx",
      "vae_decoder/config.json",
      "vae_decoder/model.onnx",
      "vae_encoder/config.json",
      "vae_encoder/model.onnx",
    ]);
    expect(manifest.files.reduce((sum, f) => sum + f.bytes, 0)).toBeLessThan(4 * 1024 * 1024);
  });

  it("declares exactly optimum's input and output names, dtypes and shapes", () => {
    for (const [path, io] of Object.entries(EXPECTED_IO)) {
      const s = sessions[path] as ort.InferenceSession;
      expect(ioOf(s.inputMetadata), path).toEqual(io.inputs);
      expect(ioOf(s.outputMetadata), path).toEqual(io.outputs);
      expect(manifest.models[path], path).toEqual(io);
    }
  });

  const prompt = (words: string[], pad: number): number[] => {
    const ids = [vocab["<|startoftext|>"] as number, ...words.map((w) => vocab[`${w}</w>`] as number)];
    ids.push(vocab["<|endoftext|>"] as number);
    while (ids.length < 77) ids.push(pad);
    return ids;
  };

  it("text_encoder pools the EOS position, is causal, and keeps batch rows apart", async () => {
    const eos = vocab["<|endoftext|>"] as number;
    const a = prompt(["a", "photo", "of", "a", "cat"], eos);
    const b = prompt(["a", "painting", "of", "a", "dog"], eos);
    const run = (ids: number[][]) =>
      session("text_encoder/model.onnx").run({ input_ids: idsTensor("int32", ids.flat(), [ids.length, 77]) });
    const out = await run([a, b]);
    const last = out.last_hidden_state as ort.Tensor;
    const pooled = out.pooler_output as ort.Tensor;
    expect(last.dims).toEqual([2, 77, 32]);
    expect(pooled.dims).toEqual([2, 32]);
    for (const name of ["hidden_states.0", "hidden_states.1", "hidden_states.2"]) {
      expect(allFinite(out[name] as ort.Tensor)).toBe(true);
    }
    const lastData = floats(last);
    const eosAt = 6; // <bos> a photo of a cat <eos>
    for (let row = 0; row < 2; row++) {
      const want = lastData.slice((row * 77 + eosAt) * 32, (row * 77 + eosAt + 1) * 32);
      expect(Array.from(floats(pooled).slice(row * 32, row * 32 + 32))).toEqual(Array.from(want));
    }

    const changed = [...a];
    changed[3] = vocab["painting</w>"] as number;
    const single = floats((await run([a])).last_hidden_state as ort.Tensor);
    const edited = floats((await run([changed])).last_hidden_state as ort.Tensor);
    expect(Array.from(edited.slice(0, 3 * 32))).toEqual(Array.from(single.slice(0, 3 * 32))); // before the edit
    expect(Array.from(edited.slice(3 * 32, 4 * 32))).not.toEqual(Array.from(single.slice(3 * 32, 4 * 32)));
    expect(Array.from(single)).toEqual(Array.from(lastData.slice(0, 77 * 32))); // row 0 of the batch of 2
  });

  it("text_encoder_2 projects the pooled EOS state to text_embeds, which follow the prompt", async () => {
    const pad = vocab["!"] as number;
    const run = (ids: number[]) =>
      session("text_encoder_2/model.onnx").run({ input_ids: idsTensor("int32", ids, [1, 77]) });
    const cat = await run(prompt(["a", "photo", "of", "a", "cat"], pad));
    const dog = await run(prompt(["a", "photo", "of", "a", "dog"], pad));
    expect((cat.text_embeds as ort.Tensor).dims).toEqual([1, 48]);
    expect((cat.last_hidden_state as ort.Tensor).dims).toEqual([1, 77, 64]);
    expect(allFinite(cat.text_embeds as ort.Tensor)).toBe(true);
    expect(maxAbsDiff(cat.text_embeds as ort.Tensor, dog.text_embeds as ort.Tensor)).toBeGreaterThan(1e-3);
  });

  const unetFeeds = (h: number, w: number, batch = 2): Record<string, ort.Tensor> => ({
    sample: floatTensor(wave(batch * 4 * h * w), [batch, 4, h, w]),
    timestep: floatTensor(Float32Array.from([500]), [1]),
    encoder_hidden_states: floatTensor(wave(batch * 77 * 96, 1, 1), [batch, 77, 96]),
    text_embeds: floatTensor(wave(batch * 48, 1, 2), [batch, 48]),
    time_ids: floatTensor(
      Float32Array.from({ length: batch * 6 }, (_, i) => [1024, 1024, 0, 0, 1024, 1024][i % 6] as number),
      [batch, 6],
    ),
  });

  it("unet depends on every one of its inputs", async () => {
    const unet = session("unet/model.onnx");
    const feeds = unetFeeds(8, 8);
    const base = (await unet.run(feeds)).out_sample as ort.Tensor;
    expect(base.dims).toEqual([2, 4, 8, 8]);
    expect(allFinite(base)).toBe(true);
    const perturbed: Record<string, ort.Tensor> = {
      sample: floatTensor(wave(2 * 4 * 64, 1, 0.5), [2, 4, 8, 8]),
      timestep: floatTensor(Float32Array.from([100]), [1]),
      encoder_hidden_states: floatTensor(wave(2 * 77 * 96, 1, 3), [2, 77, 96]),
      text_embeds: floatTensor(wave(2 * 48, 1, 4), [2, 48]),
      time_ids: floatTensor(
        Float32Array.from([512, 768, 0, 0, 1024, 1024, 1024, 1024, 64, 32, 1024, 1024]),
        [2, 6],
      ),
    };
    for (const [name, value] of Object.entries(perturbed)) {
      const out = (await unet.run({ ...feeds, [name]: value })).out_sample as ort.Tensor;
      expect(maxAbsDiff(out, base), name).toBeGreaterThan(1e-4);
    }
  });

  it("unet takes any latent size, odd ones included, and one timestep per sample", async () => {
    const unet = session("unet/model.onnx");
    const odd = (await unet.run(unetFeeds(7, 9))).out_sample as ort.Tensor;
    expect(odd.dims).toEqual([2, 4, 7, 9]);
    expect(allFinite(odd)).toBe(true);
    const perSample = await unet.run({
      ...unetFeeds(8, 8),
      timestep: floatTensor(Float32Array.from([500, 500]), [2]),
    });
    const shared = await unet.run(unetFeeds(8, 8));
    expect(maxAbsDiff(perSample.out_sample as ort.Tensor, shared.out_sample as ort.Tensor)).toBe(0);
  });

  it("unet lets a correct Euler loop (diffusers' EulerDiscreteScheduler, 12 steps) end at unit-scale latents", async () => {
    const unet = session("unet/model.onnx");
    const alphasCumprod: number[] = [];
    let product = 1;
    for (let i = 0; i < 1000; i++) {
      product *= 1 - (Math.sqrt(0.00085) + (i / 999) * (Math.sqrt(0.012) - Math.sqrt(0.00085))) ** 2;
      alphasCumprod.push(product);
    }
    const steps = 12;
    const timesteps = Array.from({ length: steps }, (_, i) => (steps - 1 - i) * Math.floor(1000 / steps) + 1); // leading
    const sigmas = [
      ...timesteps.map((t) => Math.sqrt((1 - (alphasCumprod[t] as number)) / (alphasCumprod[t] as number))),
      0,
    ];
    const [h, w] = [16, 16];
    const sigmaMax = sigmas[0] as number;
    let latents = Float32Array.from(
      wave(4 * h * w, Math.SQRT2, 0.3),
      (v) => v * Math.sqrt(sigmaMax ** 2 + 1),
    );
    const feeds = unetFeeds(h, w, 1);
    for (let i = 0; i < steps; i++) {
      const sigma = sigmas[i] as number;
      const scaled = latents.map((v) => v / Math.sqrt(sigma ** 2 + 1));
      const eps = floats(
        (
          await unet.run({
            ...feeds,
            sample: floatTensor(scaled, [1, 4, h, w]),
            timestep: floatTensor(Float32Array.from([timesteps[i] as number]), [1]),
          })
        ).out_sample as ort.Tensor,
      );
      const dt = (sigmas[i + 1] as number) - sigma;
      latents = latents.map((v, k) => v + dt * (eps[k] as number));
    }
    const std = Math.sqrt(latents.reduce((s, v) => s + v * v, 0) / latents.length);
    expect(std).toBeGreaterThan(0.3);
    expect(std).toBeLessThan(3);
  });

  it("vae_decoder paints a smooth, coloured picture in about [-1, 1]", async () => {
    const [h, w] = [8, 12];
    const latents = Float32Array.from(wave(4 * h * w, 1.2), (v) => v / 0.13025); // unscaled, as pipelines pass them
    const out = (
      await session("vae_decoder/model.onnx").run({ latent_sample: floatTensor(latents, [1, 4, h, w]) })
    ).sample as ort.Tensor;
    expect(out.dims).toEqual([1, 3, 64, 96]);
    const px = floats(out);
    const plane = 64 * 96;
    let outside = 0;
    let step = 0;
    let spread = 0;
    for (let i = 0; i < px.length; i++) {
      const v = px[i] as number;
      if (Math.abs(v) > 1.5) outside++;
      if (i % 96 !== 95) step += Math.abs((px[i + 1] as number) - v);
    }
    for (let i = 0; i < plane; i++) spread += Math.abs((px[i] as number) - (px[i + 2 * plane] as number)); // R vs B
    expect(outside / px.length).toBeLessThan(0.01);
    expect(step / px.length).toBeLessThan(0.05); // neighbouring pixels are close
    expect(spread / plane).toBeGreaterThan(0.05); // channels differ: colour, not grey
  });

  it("vae_encoder returns mean ++ logvar, and decoding the mean gives the image back", async () => {
    const [h, w] = [64, 96];
    const image = new Float32Array(3 * h * w);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          image[(c * h + y) * w + x] = 0.7 * Math.sin(x / 15 + c * 2) * Math.cos(y / 20 - c);
    const params = (await session("vae_encoder/model.onnx").run({ sample: floatTensor(image, [1, 3, h, w]) }))
      .latent_parameters as ort.Tensor;
    expect(params.dims).toEqual([1, 8, 8, 12]);
    const data = floats(params);
    const latentSize = 4 * 8 * 12;
    const logvar = data.slice(latentSize);
    expect(logvar.every((v) => v < -4 && v > -8)).toBe(true);
    const decoded = (
      await session("vae_decoder/model.onnx").run({
        latent_sample: floatTensor(data.slice(0, latentSize), [1, 4, 8, 12]),
      })
    ).sample as ort.Tensor;
    let err = 0;
    let norm = 0;
    floats(decoded).forEach((v, i) => {
      err += (v - (image[i] as number)) ** 2;
      norm += (image[i] as number) ** 2;
    });
    expect(Math.sqrt(err / norm)).toBeLessThan(0.5);
  });

  it("names parameters as diffusers/transformers do, in PyTorch layouts", async () => {
    const expected: Record<string, Record<string, number[]>> = {
      "text_encoder/model.onnx": {
        "text_model.embeddings.position_embedding.weight": [77, 32],
        "text_model.encoder.layers.0.self_attn.q_proj.weight": [32, 32],
        "text_model.encoder.layers.1.mlp.fc1.weight": [128, 32],
        "text_model.final_layer_norm.weight": [32],
      },
      "text_encoder_2/model.onnx": {
        "text_model.encoder.layers.2.self_attn.out_proj.bias": [64],
        "text_projection.weight": [48, 64],
      },
      "unet/model.onnx": {
        "conv_in.weight": [16, 4, 3, 3],
        "time_embedding.linear_1.weight": [64, 16],
        "add_embedding.linear_1.weight": [64, 96],
        "down_blocks.0.resnets.0.norm1.weight": [16],
        "down_blocks.0.downsamplers.0.conv.weight": [16, 16, 3, 3],
        "down_blocks.1.resnets.0.conv_shortcut.weight": [32, 16, 1, 1],
        "down_blocks.1.attentions.0.proj_in.weight": [32, 32],
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight": [32, 32],
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": [32, 96],
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_out.0.bias": [32],
        "down_blocks.1.attentions.0.transformer_blocks.0.ff.net.0.proj.weight": [256, 32],
        "mid_block.attentions.0.transformer_blocks.0.norm3.weight": [32],
        "mid_block.resnets.1.time_emb_proj.weight": [32, 64],
        "up_blocks.0.resnets.0.conv1.weight": [32, 64, 3, 3],
        "up_blocks.0.attentions.1.transformer_blocks.0.ff.net.2.weight": [32, 128],
        "up_blocks.0.upsamplers.0.conv.weight": [32, 32, 3, 3],
        "up_blocks.1.resnets.1.conv_shortcut.weight": [16, 32, 1, 1],
        "conv_out.weight": [4, 16, 3, 3],
      },
      "vae_decoder/model.onnx": {
        "post_quant_conv.weight": [4, 4, 1, 1],
        "decoder.conv_in.weight": [8, 4, 3, 3],
      },
      "vae_encoder/model.onnx": {
        "encoder.conv_out.weight": [8, 8, 3, 3],
        "quant_conv.weight": [8, 8, 1, 1],
      },
    };
    for (const [path, params] of Object.entries(expected)) {
      const init = await readInitializers(join(dir.path, path));
      for (const [name, dims] of Object.entries(params))
        expect(init.get(name), `${path} ${name}`).toEqual(dims);
      for (const name of init.keys()) {
        if (!name.startsWith("/const/")) expect(name, path).toMatch(/^[a-z_][\w.]*\.(weight|bias)$/);
      }
    }
  });

  it("writes configs whose numbers match the graphs", async () => {
    const unet = await json("unet/config.json");
    const te1 = await json("text_encoder/config.json");
    const te2 = await json("text_encoder_2/config.json");
    expect(unet).toMatchObject({
      _class_name: "UNet2DConditionModel",
      in_channels: 4,
      out_channels: 4,
      sample_size: 32,
      addition_embed_type: "text_time",
      addition_time_embed_dim: 8,
      cross_attention_dim: te1.hidden_size + te2.hidden_size,
      projection_class_embeddings_input_dim: te2.projection_dim + 6 * 8,
      block_out_channels: [16, 32],
      down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"],
      up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D"],
      use_linear_projection: true,
    });
    expect(te1).toMatchObject({
      architectures: ["CLIPTextModel"],
      hidden_size: 32,
      num_hidden_layers: 2,
      hidden_act: "quick_gelu",
    });
    expect(te2).toMatchObject({
      architectures: ["CLIPTextModelWithProjection"],
      hidden_size: 64,
      projection_dim: 48,
    });
    const vae = await json("vae_decoder/config.json");
    expect(vae).toMatchObject({ _class_name: "AutoencoderKL", latent_channels: 4, scaling_factor: 0.13025 });
    expect(2 ** (vae.block_out_channels.length - 1)).toBe(8);
    expect(await json("vae_encoder/config.json")).toEqual(vae);
    expect(await json("scheduler/scheduler_config.json")).toEqual({
      _class_name: "EulerDiscreteScheduler",
      _diffusers_version: "0.19.0.dev0",
      beta_end: 0.012,
      beta_schedule: "scaled_linear",
      beta_start: 0.00085,
      clip_sample: false,
      interpolation_type: "linear",
      num_train_timesteps: 1000,
      prediction_type: "epsilon",
      sample_max_value: 1,
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      timestep_spacing: "leading",
      trained_betas: null,
      use_karras_sigmas: false,
    });
    expect(await json("model_index.json")).toEqual({
      _class_name: "StableDiffusionXLPipeline",
      _diffusers_version: "0.19.0.dev0",
      force_zeros_for_empty_prompt: true,
      add_watermarker: null,
      scheduler: ["diffusers", "EulerDiscreteScheduler"],
      text_encoder: ["transformers", "CLIPTextModel"],
      text_encoder_2: ["transformers", "CLIPTextModelWithProjection"],
      tokenizer: ["transformers", "CLIPTokenizer"],
      tokenizer_2: ["transformers", "CLIPTokenizer"],
      unet: ["diffusers", "UNet2DConditionModel"],
      vae: ["diffusers", "AutoencoderKL"],
    });
  });
});
