import { writeFile } from "node:fs/promises";
import { Code } from "@connectrpc/connect";
import { encodeSafetensors, type TensorToWrite, writeSafetensors } from "@dmesh/safetensors";
import {
  type TinyLoraEntry,
  type TinyLoraLayout,
  type TinyLoraOptions,
  type TinyModelKind,
  tinyLoraEntries,
  tinyLoraTensors,
} from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AdapterFileError,
  type AdapterTarget,
  addScaledProduct,
  type LoraRequest,
  loraDeltas,
  type ModuleDelta,
  planLoraSet,
} from "../../src/adapters/index.js";
import { openFileHandles, tempDir, tinyTarget, withModules } from "./support.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir("lora-plan");
});
afterAll(async () => {
  await dir.remove();
});

/**
 * delta[o, i, y, x] = factor · Σ_r up[o, r] · down[r, i, y, x], element by element in float64, written
 * from the definition (PyTorch's `up.flatten(1) @ down.flatten(1)`), not from the code under test.
 */
function directDelta(entry: TinyLoraEntry, factor: number): Float64Array {
  const [rank, inputs, kh = 1, kw = 1] = entry.down.shape as [number, number, number?, number?];
  const out = entry.up.shape[0] as number;
  const up = entry.up.data;
  const down = entry.down.data;
  const delta = new Float64Array(out * inputs * kh * kw);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inputs; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) {
          let sum = 0;
          for (let r = 0; r < rank; r++)
            sum += (up[o * rank + r] as number) * (down[((r * inputs + i) * kh + y) * kw + x] as number);
          delta[((o * inputs + i) * kh + y) * kw + x] = factor * sum;
        }
  return delta;
}

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

async function collect(requests: LoraRequest[], target: AdapterTarget): Promise<Map<string, ModuleDelta>> {
  const plan = await planLoraSet(requests, target);
  try {
    const out = new Map<string, ModuleDelta>();
    for await (const d of loraDeltas(plan)) out.set(`${d.component}.${d.module}`, d);
    return out;
  } finally {
    await plan.close();
  }
}

/** The scale alpha/rank each layout's tiny files carry for a module (alpha is rank/2 where stored). */
function scaleOf(entry: TinyLoraEntry): number {
  return entry.alpha === undefined ? 1 : 0.5;
}

const CASES: [TinyLoraLayout, TinyModelKind][] = [
  ["kohya-sd1", "sd15"],
  ["kohya-sdxl", "sdxl"],
  ["kohya-sdxl", "sdxl-refiner"],
  ["locon", "sdxl"],
  ["locon", "sd15"],
  ["peft", "sdxl"],
  ["peft", "sd15"],
  ["diffusers-old", "sdxl"],
];

describe("every layout, on the tiny model it is for", () => {
  for (const [layout, kind] of CASES) {
    for (const layersPerBlock of [1, 2]) {
      it(`${layout} for ${kind}, layers_per_block ${layersPerBlock}: every key reaches its module, deltas as defined`, async () => {
        const options: TinyLoraOptions = { layout, kind, layersPerBlock, dtype: "F32", seed: 3 };
        const path = dir.file(`${layout}-${kind}-${layersPerBlock}.safetensors`);
        await writeSafetensors(path, tinyLoraTensors(options));
        const entries = tinyLoraEntries(options);
        const unetWeight = 0.7;
        const textEncoderWeight = -0.4;
        const deltas = await collect(
          [{ name: "x", path, unetWeight, textEncoderWeight }],
          tinyTarget(kind, layersPerBlock),
        );

        expect([...deltas.keys()].sort()).toEqual(
          entries.map((e) => `${e.module.component}.${e.module.path}`).sort(),
        );
        for (const entry of entries) {
          const d = deltas.get(`${entry.module.component}.${entry.module.path}`) as ModuleDelta;
          expect(d.shape).toEqual(entry.module.shape);
          const weight = entry.module.component === "unet" ? unetWeight : textEncoderWeight;
          expect(maxDifference(d.delta, directDelta(entry, weight * scaleOf(entry)))).toBeLessThan(1e-6);
        }
        if (layout === "locon") {
          const conv3 = entries.filter((e) => e.module.shape.length === 4 && e.module.shape[2] === 3);
          const conv1 = entries.filter((e) => e.module.shape.length === 4 && e.module.shape[2] === 1);
          expect(conv3.length).toBeGreaterThan(0);
          expect(conv1.length).toBeGreaterThan(0);
        }
      });
    }
  }

  it("reads F16 files as kohya-ss saves them", async () => {
    const path = dir.file("f16.safetensors");
    await writeSafetensors(path, tinyLoraTensors({ layout: "kohya-sdxl" }));
    const entries = tinyLoraEntries({ layout: "kohya-sdxl" });
    const deltas = await collect(
      [{ name: "x", path, unetWeight: 1, textEncoderWeight: 1 }],
      tinyTarget("sdxl"),
    );
    for (const entry of entries) {
      const d = deltas.get(`${entry.module.component}.${entry.module.path}`) as ModuleDelta;
      // Half precision: 11 significant bits in each factor.
      expect(maxDifference(d.delta, directDelta(entry, 0.5))).toBeLessThan(2e-3);
    }
  });
});

describe("sets", () => {
  it("sums two naming families at once, one weight negative", async () => {
    const kohya: TinyLoraOptions = { layout: "kohya-sdxl", dtype: "F32", seed: 1 };
    const peft: TinyLoraOptions = { layout: "peft", seed: 2 };
    const a = dir.file("set-a.safetensors");
    const b = dir.file("set-b.safetensors");
    await writeSafetensors(a, tinyLoraTensors(kohya));
    await writeSafetensors(b, tinyLoraTensors(peft));
    const deltas = await collect(
      [
        { name: "a", path: a, unetWeight: 0.8, textEncoderWeight: 0.8 },
        { name: "b", path: b, unetWeight: -0.6, textEncoderWeight: 0.3 },
      ],
      tinyTarget("sdxl"),
    );
    const expected = new Map<string, Float64Array>();
    for (const [entries, unet, te] of [
      [tinyLoraEntries(kohya), 0.8, 0.8],
      [tinyLoraEntries(peft), -0.6, 0.3],
    ] as const) {
      for (const e of entries) {
        const id = `${e.module.component}.${e.module.path}`;
        const direct = directDelta(e, (e.module.component === "unet" ? unet : te) * scaleOf(e));
        const sum = expected.get(id);
        if (sum === undefined) expected.set(id, direct);
        else for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (direct[i] as number);
      }
    }
    expect([...deltas.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [id, sum] of expected)
      expect(maxDifference((deltas.get(id) as ModuleDelta).delta, sum)).toBeLessThan(1e-6);
  });

  it("weight 0 adapts nothing: its modules get no delta at all", async () => {
    const path = dir.file("zero.safetensors");
    await writeSafetensors(path, tinyLoraTensors({ layout: "kohya-sdxl" }));
    const target = tinyTarget("sdxl");
    const none = await planLoraSet([{ name: "z", path, unetWeight: 0, textEncoderWeight: 0 }], target);
    expect(none.modules).toEqual([]);
    expect(none.adaptedModules).toEqual([tinyLoraEntries({ layout: "kohya-sdxl" }).length]);
    await none.close();
    const unetOnly = await planLoraSet([{ name: "z", path, unetWeight: 1, textEncoderWeight: 0 }], target);
    expect(unetOnly.modules.every((m) => m.component === "unet")).toBe(true);
    await unetOnly.close();
  });

  it("stops between modules when the signal aborts", async () => {
    const path = dir.file("abort.safetensors");
    await writeSafetensors(path, tinyLoraTensors({ layout: "kohya-sdxl" }));
    const plan = await planLoraSet(
      [{ name: "x", path, unetWeight: 1, textEncoderWeight: 1 }],
      tinyTarget("sdxl"),
    );
    const controller = new AbortController();
    let seen = 0;
    await expect(
      (async () => {
        for await (const _ of loraDeltas(plan, { signal: controller.signal })) {
          seen++;
          if (seen === 3) controller.abort(new Error("stop"));
        }
      })(),
    ).rejects.toThrow("stop");
    expect(seen).toBe(3);
    await plan.close();
  });
});

describe("PEFT files' lora_adapter_metadata (diffusers ≥ 0.34)", () => {
  async function factors(metadata: Record<string, unknown>): Promise<Map<string, number>> {
    const path = dir.file("peft-metadata.safetensors");
    await writeSafetensors(path, tinyLoraTensors({ layout: "peft" }), {
      lora_adapter_metadata: JSON.stringify(metadata),
    });
    const plan = await planLoraSet(
      [{ name: "p", path, unetWeight: 1, textEncoderWeight: 1 }],
      tinyTarget("sdxl"),
    );
    await plan.close();
    return new Map(
      plan.modules.map((m) => [`${m.component}.${m.module}`, (m.terms[0] as { factor: number }).factor]),
    );
  }

  it("scales by lora_alpha / r per component, alpha_pattern per module, rsLoRA by √r", async () => {
    const f = await factors({
      "unet.r": 4,
      "unet.lora_alpha": 8,
      "unet.alpha_pattern": { "attn2.to_k": 16 },
      "text_encoder.r": 4,
      "text_encoder.lora_alpha": 2,
      "text_encoder.use_rslora": true,
    });
    expect(f.get("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q")).toBe(2);
    expect(f.get("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k")).toBe(4);
    expect(f.get("text_encoder.text_model.encoder.layers.1.mlp.fc2")).toBe(1); // 2 / √4
    // No config for text_encoder_2: alpha = r, as diffusers derives it.
    expect(f.get("text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj")).toBe(1);
  });

  it("refuses metadata it cannot read rather than guess a scale", async () => {
    const path = dir.file("peft-bad.safetensors");
    for (const [raw, problem] of [
      ["{not json", "lora_adapter_metadata is not JSON"],
      [JSON.stringify({ "unet.lora_alpha": "8" }), "lora_adapter_metadata: lora_alpha is not a number"],
      [
        JSON.stringify({ "unet.lora_alpha": 8, "unet.alpha_pattern": { "^down.*to_k$": 4 } }),
        'lora_adapter_metadata: alpha_pattern key "^down.*to_k$" is a regular expression',
      ],
    ] as const) {
      await writeSafetensors(path, tinyLoraTensors({ layout: "peft" }), { lora_adapter_metadata: raw });
      await expect(
        planLoraSet([{ name: "p", path, unetWeight: 1, textEncoderWeight: 1 }], tinyTarget("sdxl")),
      ).rejects.toThrow(`peft-bad.safetensors: "__metadata__": ${problem}`);
    }
  });
});

describe("refusals: before any work, naming the file and the key, leaving no file open", () => {
  async function refused(
    name: string,
    tensors: readonly TensorToWrite[] | Uint8Array,
    kind: TinyModelKind = "sdxl",
    target: AdapterTarget = tinyTarget(kind),
  ): Promise<AdapterFileError> {
    const path = dir.file(name);
    if (tensors instanceof Uint8Array) await writeFile(path, tensors);
    else await writeSafetensors(path, tensors);
    const good = dir.file(`good-${kind}.safetensors`);
    await writeSafetensors(good, tinyLoraTensors({ layout: "peft", kind }));
    const before = openFileHandles();
    try {
      // A good file first: it is opened, then closed again when the second is refused.
      await planLoraSet(
        [
          { name: "good", path: good, unetWeight: 1, textEncoderWeight: 1 },
          { name, path, unetWeight: 1, textEncoderWeight: 1 },
        ],
        target,
      );
    } catch (error) {
      expect(error).toBeInstanceOf(AdapterFileError);
      expect((error as AdapterFileError).code).toBe(Code.FailedPrecondition);
      expect((error as AdapterFileError).message.startsWith(`${name}: `)).toBe(true);
      expect(openFileHandles()).toBe(before);
      return error as AdapterFileError;
    }
    throw new Error(`${name} was not refused`);
  }

  const f32 = (name: string, shape: number[], fill = 0.1): TensorToWrite => ({
    name,
    dtype: "F32",
    shape,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill),
  });
  const kohyaQ = "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q";

  it("an SD 1.5 LoRA on SDXL: a shape mismatch, by its key", async () => {
    const e = await refused("sd15-on-sdxl.safetensors", tinyLoraTensors({ layout: "kohya-sd1" }));
    expect(e.key).toBe(
      "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight",
    );
    expect(e.message).toBe(
      'sd15-on-sdxl.safetensors: "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": ' +
        "shape [4, 32] does not fit module weight [32, 96] (a LoRA made for another base model?): " +
        "module down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
    );
  });

  it("a key that matches no module of this model", async () => {
    // Made for layers_per_block 2: input_blocks_4 does not exist at 1.
    const e = await refused("lpb2.safetensors", tinyLoraTensors({ layout: "kohya-sdxl", layersPerBlock: 2 }));
    expect(e.message).toMatch(
      /^lpb2\.safetensors: "lora_unet_input_blocks_\d+_1_proj_in\.lora_down\.weight": matches no unet module of this model$/,
    );
    const te2 = await refused(
      "te2-on-sd15.safetensors",
      tinyLoraTensors({ layout: "peft", kind: "sdxl" }).filter((t) => t.name.startsWith("text_encoder_2.")),
      "sd15",
    );
    expect(te2.message).toMatch(
      /^te2-on-sd15\.safetensors: "text_encoder_2\.[^"]+": adapts the text_encoder_2, which this model does not have$/,
    );
    const refiner = await refused(
      "te1-on-refiner.safetensors",
      tinyLoraTensors({ layout: "peft" }).filter((t) => t.name.startsWith("text_encoder.")),
      "sdxl-refiner",
    );
    expect(refiner.message).toMatch(
      /^te1-on-refiner\.safetensors: "text_encoder\.[^"]+\.lora_A\.weight": adapts the text_encoder, which this model does not have$/,
    );
  });

  it("an up weight that does not fit its down, and a LoRA on a module that is no Linear or Conv2d", async () => {
    const up = await refused("up.safetensors", [
      f32(`${kohyaQ}.lora_down.weight`, [4, 32]),
      f32(`${kohyaQ}.lora_up.weight`, [32, 3]),
    ]);
    expect(up.key).toBe(`${kohyaQ}.lora_up.weight`);
    expect(up.problem).toMatch(/^shape \[32, 3\] does not fit module weight \[32, 32\] at rank 4/);
    const norm = "down_blocks.0.resnets.0.norm1";
    const e = await refused(
      "norm.safetensors",
      [
        f32(`lora_unet_${norm.replaceAll(".", "_")}.lora_down.weight`, [4, 16]),
        f32(`lora_unet_${norm.replaceAll(".", "_")}.lora_up.weight`, [16, 4]),
      ],
      "sdxl",
      withModules(tinyTarget("sdxl"), "unet", { [norm]: [16] }),
    );
    expect(e.problem).toBe(`adapts a module weight [16], which is neither Linear nor Conv2d: module ${norm}`);
  });

  it("LyCORIS LoHa, LoKr and other families, naming the family and the key", async () => {
    const cases: [string, string][] = [
      [`${kohyaQ}.hada_w1_a`, "LyCORIS LoHa"],
      [`${kohyaQ}.lokr_w1`, "LyCORIS LoKr"],
      [`${kohyaQ}.lora_mid.weight`, "LyCORIS LoCon with CP decomposition (lora_mid)"],
      [`${kohyaQ}.dora_scale`, "DoRA"],
      [`${kohyaQ}.oft_blocks`, "OFT/BOFT"],
      [`${kohyaQ}.diff`, "LyCORIS full (diff)"],
      [`${kohyaQ}.w_norm`, "LyCORIS norm"],
      [`${kohyaQ}.on_input`, "(IA)³"],
      [`${kohyaQ}.a1.weight`, "GLoRA"],
      ["unet.down_blocks.1.attentions.0.proj_in.lora_magnitude_vector.weight", "DoRA"],
    ];
    for (const [key, family] of cases) {
      const e = await refused("family.safetensors", [f32(key, [4])]);
      expect(e.key).toBe(key);
      expect(e.problem).toBe(
        `${family} is not supported: only LoRA and LoCon (lora_down/lora_up, lora_A/lora_B) are applied`,
      );
    }
  });

  it("keys of no layout, half a module, a module twice, a bad alpha, an integer tensor, no LoRA at all", async () => {
    const flux = await refused("flux.safetensors", [
      f32("transformer.single_blocks.0.linear1.lora_A.weight", [4, 8]),
    ]);
    expect(flux.message).toMatch(
      /^flux\.safetensors: "transformer\.single_blocks\.0\.linear1\.lora_A\.weight": is in no LoRA key layout we read/,
    );
    const full = await refused("full.safetensors", [f32("unet.conv_in.weight", [16, 4, 3, 3])]);
    expect(full.message).toBe(
      'full.safetensors: "unet.conv_in.weight": is a full model weight, not a LoRA: the file is a checkpoint',
    );
    const half = await refused("half.safetensors", [f32(`${kohyaQ}.lora_down.weight`, [4, 32])]);
    expect(half.message).toBe(
      `half.safetensors: "${kohyaQ}.lora_down.weight": module has a down weight but no up weight`,
    );
    const twice = await refused("twice.safetensors", [
      f32(`${kohyaQ}.lora_down.weight`, [4, 32]),
      f32(`${kohyaQ}.lora_up.weight`, [32, 4]),
      f32("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight", [4, 32]),
      f32("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight", [32, 4]),
    ]);
    expect(twice.problem).toBe(
      `adapts unet module down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q, as "${kohyaQ}.lora_down.weight" already does`,
    );
    const alpha = await refused("alpha.safetensors", [
      f32(`${kohyaQ}.lora_down.weight`, [4, 32]),
      f32(`${kohyaQ}.lora_up.weight`, [32, 4]),
      f32(`${kohyaQ}.alpha`, [2]),
    ]);
    expect(alpha.message).toBe(`alpha.safetensors: "${kohyaQ}.alpha": alpha is not one finite number`);
    const nan = await refused("nan.safetensors", [
      f32(`${kohyaQ}.lora_down.weight`, [4, 32]),
      f32(`${kohyaQ}.lora_up.weight`, [32, 4]),
      f32(`${kohyaQ}.alpha`, [], Number.NaN),
    ]);
    expect(nan.key).toBe(`${kohyaQ}.alpha`);
    const ints = encodeSafetensors([f32(`${kohyaQ}.lora_up.weight`, [32, 4])]);
    // Rewrite a copy's header by hand: an I32 down weight of the right size.
    const header = JSON.stringify({
      [`${kohyaQ}.lora_down.weight`]: { dtype: "I32", shape: [4, 32], data_offsets: [0, 512] },
      [`${kohyaQ}.lora_up.weight`]: { dtype: "F32", shape: [32, 4], data_offsets: [512, 1024] },
    });
    const bytes = new Uint8Array(8 + header.length + 1024);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(new TextEncoder().encode(header), 8);
    bytes.set(ints.subarray(ints.length - 512), 8 + header.length + 512);
    const int = await refused("int.safetensors", bytes);
    expect(int.message).toBe(
      `int.safetensors: "${kohyaQ}.lora_down.weight": dtype I32 is not F16, BF16 or F32`,
    );
    const empty = await refused("empty.safetensors", []);
    expect(empty.message).toBe("empty.safetensors: holds no LoRA weights");
  });

  it("unreadable files: truncated, pickled", async () => {
    const whole = encodeSafetensors(tinyLoraTensors({ layout: "kohya-sdxl" }));
    const cut = await refused("cut.safetensors", whole.subarray(0, whole.length - 100));
    expect(cut.problem).toMatch(/run past the end of the data .*: the file is truncated$/);
    expect(cut.key).toMatch(/^lora_/);
    const path = dir.file("model.ckpt");
    await expect(
      planLoraSet([{ name: "model", path, unetWeight: 1, textEncoderWeight: 1 }], tinyTarget("sdxl")),
    ).rejects.toThrow(
      "model.ckpt: is a pickled PyTorch checkpoint, and loading a pickle can run arbitrary code: we never do. Convert it to .safetensors",
    );
  });

  it("is reported against a request field when the caller names one", async () => {
    const e = await refused("field.safetensors", tinyLoraTensors({ layout: "kohya-sd1" }));
    const moved = e.forField("spec.adapters[1]");
    expect(moved.field).toBe("spec.adapters[1]");
    expect(moved.message).toBe(`spec.adapters[1]: ${e.message}`);
  });
});

describe("addScaledProduct", () => {
  it("accumulates into the delta (several LoRAs on one module) and skips nothing", () => {
    const up = Float32Array.from([1, 2, 3, 4, 5, 6]); // [3, 2]
    const down = Float32Array.from([1, 0, -1, 2, 0.5, 0.25, 0, 1]); // [2, 4]
    const delta = new Float32Array(12).fill(1);
    addScaledProduct(delta, up, down, 2, 0.5, new Float64Array(4));
    // row o: 1 + 0.5 · (up[o,0]·down[0] + up[o,1]·down[1])
    expect([...delta]).toEqual([2, 1.25, 0.5, 3, 3.5, 1.5, -0.5, 6, 5, 1.75, -1.5, 9]);
  });

  it("takes ranks four at a time and the rest one by one, as the definition says", () => {
    for (const rank of [1, 3, 4, 7, 8]) {
      const [out, columns] = [5, 9];
      const up = Float32Array.from({ length: out * rank }, (_, i) => Math.sin(i + rank));
      const down = Float32Array.from({ length: rank * columns }, (_, i) => Math.cos(i * 0.7));
      const delta = new Float32Array(out * columns);
      addScaledProduct(delta, up, down, rank, -1.5, new Float64Array(16));
      for (let o = 0; o < out; o++)
        for (let c = 0; c < columns; c++) {
          let sum = 0;
          for (let r = 0; r < rank; r++)
            sum += (up[o * rank + r] as number) * (down[r * columns + c] as number);
          expect(delta[o * columns + c]).toBeCloseTo(-1.5 * sum, 5);
        }
    }
  });
});
