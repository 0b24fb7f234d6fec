import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  cpuSessionSettings,
  createPatchedSession,
  encodeOnnxModel,
  indexWeights,
  modulePatch,
  type OnnxModel,
  OnnxSession,
  readModuleWeight,
  readOnnxModel,
  type TensorFeed,
  type TensorPatch,
  tensorProto,
} from "@dmesh/onnx";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, type VariantName, writeVariants } from "./support/tiny-models.js";

const settings = cpuSessionSettings(1);
let root: Awaited<ReturnType<typeof tempDir>>;
let dirs: Record<VariantName, string>;

beforeAll(async () => {
  root = await tempDir("patch");
  dirs = await writeVariants(root.path);
});
afterAll(() => root?.remove());

/** A model written with the patched values directly, as a reference: every tensor inline. */
async function writtenDirectly(
  base: OnnxModel,
  patches: ReadonlyMap<string, TensorPatch>,
): Promise<Uint8Array> {
  const proto = await base.toProto();
  const graph = proto.graph;
  if (!graph) throw new Error("no graph");
  graph.initializer = graph.initializer.map((t) => {
    const patch = patches.get(t.name);
    return patch ? tensorProto(t.name, "float32", patch.dims, patch.data) : t;
  });
  return encodeOnnxModel(proto).model;
}

async function runAll(session: OnnxSession, feeds: Record<string, TensorFeed>) {
  const out = await session.run(feeds);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Buffer.from(v.data.buffer)]));
}

/** A deterministic small change of every value, as a LoRA delta would be. */
function nudged(values: Float32Array, seed: number): Float32Array {
  return values.map((v, i) => v + 0.05 * Math.sin(i * 0.7 + seed));
}

function ids(values: number[]): TensorFeed {
  const data = new Int32Array(77).fill(897);
  data.set(values);
  return { data, dims: [1, 77] };
}

const unetFeeds: Record<string, TensorFeed> = {
  sample: { data: Float32Array.from({ length: 4 * 64 }, (_, i) => Math.sin(i)), dims: [1, 4, 8, 8] },
  timestep: { data: Float32Array.from([500]), dims: [1] },
  encoder_hidden_states: {
    data: Float32Array.from({ length: 77 * 96 }, (_, i) => Math.cos(i) / 2),
    dims: [1, 77, 96],
  },
  text_embeds: { data: new Float32Array(48).fill(0.1), dims: [1, 48] },
  time_ids: { data: Float32Array.from([64, 64, 0, 0, 64, 64]), dims: [1, 6] },
};

describe("patched sessions", () => {
  it.each([
    ["exported, external data", "unet"],
    ["parameters, inline", "unet"],
    ["exported, inline", "text_encoder_2"],
  ] as const)(
    "%s %s: in memory and on disk, the same outputs as a model written with the patched weights",
    async (variant, component) => {
      const base = await readOnnxModel(join(dirs[variant], component, "model.onnx"));
      const index = indexWeights(base);
      const targets =
        component === "unet"
          ? [
              "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
              "mid_block.attentions.0.proj_in",
              "conv_in",
            ]
          : [
              "text_model.encoder.layers.1.self_attn.q_proj",
              "text_model.encoder.layers.2.mlp.fc2",
              "text_projection",
            ];
      const patches = new Map<string, TensorPatch>();
      for (const [i, module] of targets.entries()) {
        const weight = index.modules.get(module);
        if (!weight) throw new Error(`${module} not indexed`);
        patches.set(weight.initializer, modulePatch(weight, nudged(await readModuleWeight(base, weight), i)));
      }
      // The base tensors were read once and are kept, counted.
      const kept = base.cachedBytes;
      expect(kept).toBe([...patches.values()].reduce((n, p) => n + p.data.byteLength, 0));
      for (const module of targets) await readModuleWeight(base, index.modules.get(module) ?? ({} as never));
      expect(base.cachedBytes).toBe(kept);

      const feeds = component === "unet" ? unetFeeds : { input_ids: ids([896, 10, 20, 30, 897]) };
      const plain = await OnnxSession.open("m", component, base.file, settings);
      const reference = await OnnxSession.open(
        "m",
        component,
        await writtenDirectly(base, patches),
        settings,
      );
      const expected = await runAll(reference, feeds);
      const before = await runAll(plain, feeds);
      await Promise.all([plain.release(), reference.release()]);
      const main = component === "unet" ? "out_sample" : "text_embeds";
      expect(expected[main]?.equals(before[main] as Buffer)).toBe(false);

      const inMemory = await createPatchedSession(base, patches, { name: component, settings });
      const onDisk = await createPatchedSession(base, patches, {
        name: component,
        settings,
        maxInMemoryBytes: 0,
        cacheDir: join(root.path, "cache"),
      });
      expect(inMemory.directory).toBeUndefined();
      expect(onDisk.directory && existsSync(join(onDisk.directory, "model.onnx"))).toBe(true);
      for (const patched of [inMemory, onDisk]) {
        const out = await runAll(patched.session, feeds);
        for (const [name, bytes] of Object.entries(expected))
          expect(out[name]?.equals(bytes), name).toBe(true);
        await patched.release();
      }
      expect(existsSync(onDisk.directory ?? "")).toBe(false);
    },
  );

  it("grows a token-embedding table by new rows that new token ids reach", async () => {
    for (const variant of ["parameters, external data", "exported, inline"] as const) {
      const base = await readOnnxModel(join(dirs[variant], "text_encoder", "model.onnx"));
      const table = indexWeights(base).parameters.get("text_model.embeddings.token_embedding.weight");
      expect(table?.dims).toEqual([898, 32]);
      const old = await base.readFloat32("text_model.embeddings.token_embedding.weight");
      const grown = new Float32Array(old.length + 2 * 32);
      grown.set(old);
      grown.set(
        Float32Array.from({ length: 64 }, (_, i) => Math.cos(i)),
        old.length,
      );
      const patches = new Map([
        ["text_model.embeddings.token_embedding.weight", { data: grown, dims: [900, 32] }],
      ]);
      const feeds = { input_ids: ids([896, 898, 899, 897]) };
      const reference = await OnnxSession.open("m", "te", await writtenDirectly(base, patches), settings);
      const expected = await runAll(reference, feeds);
      await reference.release();
      for (const options of [{}, { maxInMemoryBytes: 0, cacheDir: join(root.path, "cache") }]) {
        const patched = await createPatchedSession(base, patches, {
          name: "text_encoder",
          settings,
          ...options,
        });
        const out = await runAll(patched.session, feeds);
        for (const [name, bytes] of Object.entries(expected))
          expect(out[name]?.equals(bytes), name).toBe(true);
        // Old ids read the old rows: the same hidden states as the base model.
        const plain = await OnnxSession.open("m", "te", base.file, settings);
        const oldIds = { input_ids: ids([896, 5, 6, 897]) };
        const a = await runAll(plain, oldIds);
        const b = await runAll(patched.session, oldIds);
        expect(b.last_hidden_state?.equals(a.last_hidden_state as Buffer)).toBe(true);
        await Promise.all([plain.release(), patched.release()]);
      }
    }
  });

  it("refuses a patch of a tensor the model lacks or of the wrong size", async () => {
    const base = await readOnnxModel(join(dirs["exported, inline"], "text_encoder", "model.onnx"));
    await expect(
      createPatchedSession(base, new Map([["nope", { data: new Float32Array(1), dims: [1] }]]), {
        name: "te",
        settings,
      }),
    ).rejects.toThrow(/has no initializer "nope" to patch/);
    await expect(
      createPatchedSession(
        base,
        new Map([["text_model.final_layer_norm.weight", { data: new Float32Array(3), dims: [32] }]]),
        { name: "te", settings },
      ),
    ).rejects.toThrow(/dims \[32\] hold 32 values, not 3/);
  });
});
