import { join } from "node:path";
import { indexWeights, type OnnxModel, readModuleWeight, readOnnxModel, type WeightIndex } from "@dmesh/onnx";
import { tinyAdapterDims, tinyAdapterModules } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, VARIANTS, type VariantName, writeVariants } from "./support/tiny-models.js";

const NAMES = Object.keys(VARIANTS) as VariantName[];
const COMPONENTS = ["unet", "text_encoder", "text_encoder_2"] as const;
/** Linears that torch.onnx exports as Gemm (2-D input with a bias): their weights keep their names. */
const GEMM = /^(time_embedding\.linear_[12]|add_embedding\.linear_[12]|.*\.time_emb_proj)$/;
const EMBEDDINGS = /\.(token|position)_embedding$/;

let root: Awaited<ReturnType<typeof tempDir>>;
const models = new Map<string, { model: OnnxModel; index: WeightIndex }>();
const key = (variant: VariantName, component: string) => `${variant}/${component}`;

beforeAll(async () => {
  root = await tempDir("index");
  // Two resnets and transformers per down block, as SDXL has: kohya's input_blocks_4_1 names a module here.
  const dirs = await writeVariants(root.path, { layersPerBlock: 2 });
  for (const variant of NAMES) {
    for (const component of COMPONENTS) {
      const model = await readOnnxModel(join(dirs[variant], component, "model.onnx"));
      models.set(key(variant, component), { model, index: indexWeights(model) });
    }
  }
});
afterAll(() => root?.remove());

const get = (variant: VariantName, component: string) =>
  models.get(key(variant, component)) as { model: OnnxModel; index: WeightIndex };

/**
 * The state dict's view of the modules, from the parameter-named variant: every `<module>.weight` of rank
 * 2 (Linear) or 4 (Conv) but the embedding tables, with its PyTorch shape.
 */
function stateDictModules(component: string): Map<string, number[]> {
  const { model } = get("parameters, inline", component);
  const out = new Map<string, number[]>();
  for (const info of model.initializers.values()) {
    const module = info.name.replace(/\.weight$/, "");
    if (module === info.name || EMBEDDINGS.test(module)) continue;
    if (info.dims.length === 2 || info.dims.length === 4) out.set(module, [...info.dims]);
  }
  return out;
}

describe("the weight index", () => {
  it.each(COMPONENTS)(
    "finds every Linear and Conv of the %s in each naming and storage, in PyTorch's layout",
    (component) => {
      const expected = stateDictModules(component);
      expect(expected.size).toBeGreaterThan(10);
      for (const variant of NAMES) {
        const { index } = get(variant, component);
        expect([...index.modules.keys()].sort(), variant).toEqual([...expected.keys()].sort());
        const exported = variant.startsWith("exported");
        for (const [module, shape] of expected) {
          const w = index.modules.get(module);
          expect(w?.shape, `${variant} ${module}`).toEqual(shape);
          expect(w?.kind).toBe(shape.length === 4 ? "conv" : "linear");
          expect(w?.dataType).toBe("float32");
          if (!exported || w?.kind === "conv" || GEMM.test(module)) {
            expect([w?.initializer, w?.transposed, w?.foundBy]).toEqual([
              `${module}.weight`,
              false,
              "parameter",
            ]);
          } else {
            // Folded by torch.onnx: [in, out] under an anonymous name, found through the MatMul's node path.
            expect(w?.initializer).toMatch(/^onnx::MatMul_\d+$/);
            expect([w?.transposed, w?.foundBy]).toEqual([true, "node"]);
            expect(get(variant, component).model.initializer(w?.initializer ?? "").dims).toEqual([
              shape[1],
              shape[0],
            ]);
          }
        }
      }
    },
  );

  it("reads the same weights from every variant (one seed, one set of values)", async () => {
    for (const component of COMPONENTS) {
      const { model, index } = get("parameters, inline", component);
      for (const variant of NAMES.slice(1)) {
        const other = get(variant, component);
        for (const w of index.modules.values()) {
          const a = await readModuleWeight(model, w);
          const b = await readModuleWeight(other.model, other.index.modules.get(w.module) ?? w);
          expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer)), `${variant} ${w.module}`).toBe(true);
        }
      }
    }
  });

  it("agrees with the adapters' own derivation of the tiny model's modules (paths and PyTorch shapes)", () => {
    const derived = tinyAdapterModules(tinyAdapterDims("sdxl", 2));
    for (const component of COMPONENTS) {
      const expected = new Map(
        derived.filter((m) => m.component === component).map((m) => [m.path, m.shape]),
      );
      for (const variant of NAMES) {
        const found = new Map([...get(variant, component).index.modules].map(([p, w]) => [p, w.shape]));
        expect(found, `${variant} ${component}`).toEqual(expected);
      }
    }
  });

  it("names the modules LoRA files address, as on real SDXL", () => {
    const unet = get("exported, external data", "unet").index;
    const q = unet.modules.get("down_blocks.1.attentions.1.transformer_blocks.0.attn1.to_q");
    expect(q).toMatchObject({ kind: "linear", transposed: true, shape: [32, 32], foundBy: "node" });
    expect(unet.modules.get("up_blocks.0.attentions.2.proj_out")).toMatchObject({ shape: [32, 32] });
    expect(unet.modules.get("mid_block.attentions.0.transformer_blocks.0.attn2.to_k")).toMatchObject({
      shape: [32, 96],
    });
    expect(unet.modules.get("down_blocks.0.resnets.1.conv2")).toMatchObject({
      kind: "conv",
      shape: [16, 16, 3, 3],
      initializer: "down_blocks.0.resnets.1.conv2.weight",
    });
    const te2 = get("exported, inline", "text_encoder_2").index;
    expect(te2.modules.get("text_model.encoder.layers.2.mlp.fc1")).toMatchObject({
      shape: [256, 64],
      transposed: true,
    });
    expect(te2.modules.get("text_projection")).toMatchObject({ shape: [48, 64], transposed: true });
  });

  it("lists the parameters that kept their names: embeddings, norms, biases", () => {
    for (const variant of NAMES) {
      const te = get(variant, "text_encoder").index;
      expect(te.parameters.get("text_model.embeddings.token_embedding.weight")?.dims).toEqual([898, 32]);
      expect(te.parameters.get("text_model.final_layer_norm.weight")?.dims).toEqual([32]);
      expect(te.parameters.get("text_model.encoder.layers.0.self_attn.q_proj.bias")?.dims).toEqual([32]);
      const unet = get(variant, "unet").index;
      // torch.onnx folds GroupNorm's Unsqueeze of its scale, so an export loses that name.
      expect(unet.parameters.has("down_blocks.0.resnets.0.norm1.weight")).toBe(
        !variant.startsWith("exported"),
      );
    }
  });
});
