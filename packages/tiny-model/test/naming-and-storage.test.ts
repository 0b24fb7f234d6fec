import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCliArgs } from "../src/cli-args.js";
import { type ModelIo, type TinyModelOptions, writeTinyModel } from "../src/index.js";
import { floats, idsTensor, openSession, ort, readInitializers, tempDir, wave } from "./helpers.js";

// The naming and storage variants hold the same weights (one seed) and compute the same outputs; only where
// the weights are and what they are called differs.

const SIZES: Record<string, Record<string, number>> = {
  unet: { batch_size: 2, height: 6, width: 10, sequence_length: 77, steps: 1 },
  vae_encoder: { batch_size: 1, height: 48, width: 80 },
  vae_decoder: { batch_size: 1, latent_height: 6, latent_width: 10 },
  text_encoder: { batch_size: 2, sequence_length: 77 },
  text_encoder_2: { batch_size: 2, sequence_length: 77 },
};

function feedFor(io: ModelIo, sizes: Record<string, number>): ort.Tensor {
  const dims = io.dims.map((d) => (typeof d === "number" ? d : (sizes[d] as number)));
  const count = dims.reduce((a, b) => a * b, 1);
  if (io.name === "input_ids")
    return idsTensor(
      io.type,
      Array.from({ length: count }, (_, i) => 5 + (i % 77)),
      dims,
    );
  if (io.name === "timestep") return new ort.Tensor("float32", new Float32Array(count).fill(700), dims);
  return new ort.Tensor("float32", wave(count), dims);
}

/** Every output of every ONNX file of the model in `dir`, as bytes. */
async function runAll(dir: string, options: Partial<TinyModelOptions>): Promise<Map<string, Buffer>> {
  const manifest = await writeTinyModel(dir, options);
  const out = new Map<string, Buffer>();
  for (const [path, signature] of Object.entries(manifest.models)) {
    const session = await openSession(join(dir, path));
    const sizes = SIZES[path.split("/")[0] as string] as Record<string, number>;
    const result = await session.run(
      Object.fromEntries(signature.inputs.map((io) => [io.name, feedFor(io, sizes)])),
    );
    for (const [name, tensor] of Object.entries(result))
      out.set(`${path} ${name}`, Buffer.from(floats(tensor).buffer));
    await session.release();
  }
  return out;
}

let root: Awaited<ReturnType<typeof tempDir>>;
let reference: Map<string, Buffer>;

beforeAll(async () => {
  root = await tempDir("naming");
  reference = await runAll(join(root.path, "default"), {});
});
afterAll(() => root?.remove());

describe("naming and storage variants", () => {
  it.each([
    ["exported naming", { naming: "exported" }],
    ["external data", { externalData: true }],
    ["both", { naming: "exported", externalData: true }],
  ] as const)("%s: every output of every model equals the default model's", async (name, given) => {
    const options: Partial<TinyModelOptions> = given;
    const dir = join(root.path, name.replace(/ /g, "-"));
    const outputs = await runAll(dir, options);
    expect([...outputs.keys()]).toEqual([...reference.keys()]);
    for (const [key, bytes] of reference) expect(outputs.get(key)?.equals(bytes), key).toBe(true);
    const external = existsSync(join(dir, "unet", "model.onnx_data"));
    expect(external).toBe(options.externalData === true);
    const names = [...(await readInitializers(join(dir, "text_encoder", "model.onnx"))).keys()];
    const q = "text_model.encoder.layers.0.self_attn.q_proj.weight";
    expect(names.includes(q)).toBe(options.naming !== "exported");
  });

  it("exported naming: anonymous transposed MatMul weights, module paths in node names, Gemm on 2-D inputs", async () => {
    const dir = join(root.path, "exported-naming");
    const unet = readFileSync(join(dir, "unet", "model.onnx")).toString("latin1");
    expect(unet).toContain("/down_blocks.1/attentions.0/transformer_blocks.0/attn1/to_q/MatMul");
    expect(unet).toContain("/time_embedding/linear_1/Gemm");
    expect(unet).not.toContain("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight");
    const init = await readInitializers(join(dir, "unet", "model.onnx"));
    expect(init.get("time_embedding.linear_1.weight")).toEqual([64, 16]);
    expect(init.get("conv_in.weight")).toEqual([16, 4, 3, 3]);
    const anonymous = [...init].filter(([n]) => n.startsWith("onnx::MatMul_"));
    expect(anonymous.length).toBeGreaterThan(10);
  });

  it("layersPerBlock 2: two resnets and transformers per down block, three per up block, as in SDXL", async () => {
    const dir = join(root.path, "two-layers");
    const manifest = await writeTinyModel(dir, { layersPerBlock: 2 });
    expect(manifest.options.layersPerBlock).toBe(2);
    const config = JSON.parse(readFileSync(join(dir, "unet", "config.json"), "utf8"));
    expect(config.layers_per_block).toBe(2);
    const init = await readInitializers(join(dir, "unet", "model.onnx"));
    expect(init.has("down_blocks.1.attentions.1.transformer_blocks.0.attn1.to_q.weight")).toBe(true);
    expect(init.has("up_blocks.0.attentions.2.proj_out.weight")).toBe(true);
    expect(init.has("up_blocks.1.resnets.2.conv1.weight")).toBe(true);
    const session = await openSession(join(dir, "unet", "model.onnx"));
    const feeds = Object.fromEntries(
      (manifest.models["unet/model.onnx"]?.inputs ?? []).map((io) => [
        io.name,
        feedFor(io, SIZES.unet ?? {}),
      ]),
    );
    const out = await session.run(feeds);
    expect(out.out_sample?.dims).toEqual([2, 4, 6, 10]);
    await session.release();
  });

  it("takes the options from the command line", () => {
    expect(
      parseCliArgs(["d", "--naming", "exported", "--external-data", "--layers-per-block", "2"]).diffusion,
    ).toMatchObject({ naming: "exported", externalData: true, layersPerBlock: 2 });
  });
});
