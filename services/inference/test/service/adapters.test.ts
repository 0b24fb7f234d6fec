import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { encodeSafetensors } from "@dmesh/safetensors";
import { tinyLoraTensors, writeTinyEmbedding, writeTinyLora } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failure, generate, type RequestInit, smallSpec } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

// LoRAs and embeddings through the inference service on tiny models (real ONNX graphs, real sessions):
// tags and the adapter list, merged sessions cached per set, weight 0, every refusal, embeddings.

let service: TestInference;

beforeAll(async () => {
  service = await startTestInference(
    {
      xl: { kind: "sdxl" },
      // The same weights as torch.onnx exports them: anonymous transposed MatMul weights, external data.
      "xl-exported": { kind: "sdxl", naming: "exported", externalData: true },
      sd: { kind: "sd15" },
    },
    { DEFAULT_MODEL: "xl", MAX_LOADED_MODELS: "8" },
    async (modelsDir) => {
      const loras = join(modelsDir, "loras");
      const embeddings = join(modelsDir, "embeddings");
      await mkdir(loras);
      await mkdir(embeddings);
      await writeTinyLora(join(loras, "style.safetensors"), { layout: "kohya-sdxl", strength: 2 });
      await writeTinyLora(join(loras, "peft_style.safetensors"), { layout: "peft", seed: 3, strength: 2 });
      await writeTinyLora(join(loras, "sd1_style.safetensors"), { layout: "kohya-sd1" });
      const q = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q";
      await writeFile(
        join(loras, "loha.safetensors"),
        encodeSafetensors([{ name: `${q}.hada_w1_a`, dtype: "F32", shape: [4], data: new Float32Array(4) }]),
      );
      const whole = encodeSafetensors(tinyLoraTensors({ layout: "kohya-sdxl" }));
      await writeFile(join(loras, "cut.safetensors"), whole.subarray(0, whole.length - 100));
      await writeFile(join(loras, "old.ckpt"), new Uint8Array([0x80, 0x02]));
      await writeTinyEmbedding(join(embeddings, "shiny.safetensors"), { kind: "sdxl", vectors: 2 });
      await writeTinyEmbedding(join(embeddings, "sdone.safetensors"), { kind: "sd15" });
    },
  );
}, 120_000);

afterAll(async () => {
  await service?.close();
});

async function image(prompt: string, over: Parameters<typeof smallSpec>[0] = {}): Promise<Uint8Array> {
  const events = await generate(service, { spec: smallSpec({ conditioning: { prompt }, ...over }) });
  const data = events.images[0]?.image?.data;
  if (!data) throw new Error("no image");
  return data;
}

function maxLevelDifference(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

async function expectRefused(_service: TestInference, request: RequestInit, code: Code) {
  const err = await failure(generate(service, request));
  expect(Code[err.code]).toBe(Code[code]);
  return err;
}

const builds = () => service.logs.filter((l) => l.msg === "model variant built").length;

describe("LoRAs", () => {
  it("weight 0 makes the same bytes as no LoRA; a weight changes the image", async () => {
    const plain = await image("a fox in the snow");
    expect(await image("a fox in the snow<lora:style:0>")).toEqual(plain);
    const styled = await image("a fox in the snow <lora:style:1>");
    expect(maxLevelDifference(styled, plain)).toBeGreaterThan(3);
  });

  it("a tag and the adapter list are the same LoRA; the merged set is built once and cached", async () => {
    const before = builds();
    const tagged = await image("a lynx <lora:style:0.7> <lora:peft_style:-0.5>");
    const listed = await image("a lynx ", {
      adapters: [
        { name: "style", weight: 0.7 },
        { name: "peft_style", weight: -0.5 },
      ],
    });
    expect(listed).toEqual(tagged);
    // Same set, same weights: one build, whichever way it was asked for (the list's order does not matter).
    expect(builds() - before).toBe(1);
    const events = await generate(service, {
      spec: smallSpec({ conditioning: { prompt: "a lynx <lora:peft_style:-0.5>, <lora:style:0.7>" } }),
    });
    expect(builds() - before).toBe(1);
    // Infotext `Lora hashes`, in request order, with A1111's 12-digit short hashes.
    const lora = events.done?.infotext.find((f) => f.key === "Lora hashes")?.value ?? "";
    expect(lora).toMatch(/^peft_style: [0-9a-f]{12}, style: [0-9a-f]{12}$/);
  });

  it("separate text-encoder and UNet weights (<lora:NAME:TE:UNET>) act separately", async () => {
    const both = await image("a hare <lora:style:1>");
    const unetOnly = await image("a hare <lora:style:0:1>");
    const teOnly = await image("a hare <lora:style:1:0>");
    expect(maxLevelDifference(unetOnly, both)).toBeGreaterThan(0);
    expect(maxLevelDifference(teOnly, both)).toBeGreaterThan(0);
  });

  it("works on a torch.onnx-style export with external data, as on the parameter-named model", async () => {
    const named = await image("an owl <lora:style:1> <lora:peft_style:-1>");
    const exported = await image("an owl <lora:style:1> <lora:peft_style:-1>", {
      models: { base: "xl-exported" },
    });
    expect(maxLevelDifference(exported, named)).toBeLessThanOrEqual(3);
    expect(
      maxLevelDifference(exported, await image("an owl", { models: { base: "xl-exported" } })),
    ).toBeGreaterThan(3);
  });

  it("UnloadModel drops the base's idle sets with it", async () => {
    await image("a crow <lora:style:0.5>");
    await service.models.unloadModel({ id: "xl" });
    expect((await service.inference.getQueue({})).loadedModels).not.toContain("xl");
    const before = builds();
    await image("a crow <lora:style:0.5>");
    expect(builds() - before).toBe(1);
  });

  it("refuses what it cannot apply, naming the file and key, and keeps serving", async () => {
    const before = builds();
    const cases: [string, Code, RegExp][] = [
      ["<lora:nosuch:1>", Code.NotFound, /no LoRA "nosuch" \(no nosuch\.safetensors in /],
      [
        "<lora:sd1_style:1>",
        Code.FailedPrecondition,
        /sd1_style\.safetensors: "lora_unet_.*": shape .* does not fit/,
      ],
      [
        "<lora:loha:1>",
        Code.FailedPrecondition,
        /loha\.safetensors: "lora_unet_.*hada_w1_a": LyCORIS LoHa is not supported/,
      ],
      ["<lora:cut:1>", Code.FailedPrecondition, /cut\.safetensors: "lora_.*": .*truncated/],
      ["<lora:old:1>", Code.FailedPrecondition, /old\.ckpt, a pickled PyTorch file, which is never loaded/],
      [
        "<lora:style:1> <lora:style:0.5>",
        Code.InvalidArgument,
        /names LoRA "style", which spec\.conditioning\.prompt already names/,
      ],
    ];
    for (const [tag, code, message] of cases) {
      const err = await expectRefused(
        service,
        { spec: smallSpec({ conditioning: { prompt: `a cat ${tag}` } }) },
        code,
      );
      expect(err.message).toMatch(message);
      expect(err.field).toBe("spec.conditioning.prompt");
      // A refusal at weight 0 is a refusal too: nothing is applied in part.
    }
    const zero = await expectRefused(
      service,
      { spec: smallSpec({ adapters: [{ name: "sd1_style", weight: 0 }] }) },
      Code.FailedPrecondition,
    );
    expect(zero.field).toBe("spec.adapters[0].name");
    // No half-built entry: nothing was built, and a refused set is refused again rather than served.
    expect(builds()).toBe(before);
    await expectRefused(
      service,
      { spec: smallSpec({ conditioning: { prompt: "a cat <lora:loha:1>" } }) },
      Code.FailedPrecondition,
    );
    expect((await image("a cat")).length).toBe(64 * 64 * 3);
  });
});

describe("textual-inversion embeddings", () => {
  it("a prompt word equal to the file stem becomes its vectors, also inside (name:1.2); cached per set", async () => {
    const before = builds();
    const withEmbedding = await image("a fox, shiny");
    expect(builds() - before).toBe(1);
    const events = await generate(service, { spec: smallSpec({ conditioning: { prompt: "a fox, shiny" } }) });
    expect(events.images[0]?.image?.data).toEqual(withEmbedding);
    expect(builds() - before).toBe(1);
    expect(events.done?.infotext.map((f) => f.key)).toEqual(["TI hashes"]);
    expect(events.done?.infotext[0]?.value).toMatch(/^shiny: [0-9a-f]{12}$/);
    const weighted = await image("a fox, (shiny:1.2)");
    expect(maxLevelDifference(weighted, withEmbedding)).toBeGreaterThan(0);

    // The same prompt with the file gone is plain text: the embedding made the difference.
    const dir = join(service.modelsDir, "embeddings");
    await rename(join(dir, "shiny.safetensors"), join(dir, "shiny.off"));
    try {
      const plain = await image("a fox, shiny");
      expect(maxLevelDifference(plain, withEmbedding)).toBeGreaterThan(3);
    } finally {
      await rename(join(dir, "shiny.off"), join(dir, "shiny.safetensors"));
    }
  });

  it("work on a torch.onnx-style export (pooling still finds EOS) and on SD 1.x (emb_params)", async () => {
    const named = await image("a fox, shiny");
    const exported = await image("a fox, shiny", { models: { base: "xl-exported" } });
    expect(maxLevelDifference(exported, named)).toBeLessThanOrEqual(3);
    const sd = { models: { base: "sd" } };
    const sdPlain = await image("a fox, sdone", sd);
    const dir = join(service.modelsDir, "embeddings");
    await rename(join(dir, "sdone.safetensors"), join(dir, "sdone.off"));
    try {
      expect(maxLevelDifference(await image("a fox, sdone", sd), sdPlain)).toBeGreaterThan(3);
    } finally {
      await rename(join(dir, "sdone.off"), join(dir, "sdone.safetensors"));
    }
    // And a kohya-ss SD 1.x LoRA (lora_te_, down_blocks names) on the SD 1.x model.
    expect(
      maxLevelDifference(await image("a fox <lora:sd1_style:1>", sd), await image("a fox", sd)),
    ).toBeGreaterThan(0);
  });

  it("an embedding made for another base model is refused, naming the file", async () => {
    const err = await expectRefused(
      service,
      { spec: smallSpec({ conditioning: { prompt: "a fox, sdone" } }) },
      Code.FailedPrecondition,
    );
    expect(err.message).toMatch(
      /sdone\.safetensors: is an embedding \(one vector set \d+ wide\); this model has text encoders/,
    );
  });
});

describe("UNet batches and adapter sets", () => {
  let concurrent: TestInference;
  beforeAll(async () => {
    concurrent = await startTestInference(
      { xl: { kind: "sdxl" } },
      { MAX_UNET_BATCH: "4", MAX_CONCURRENT_GENERATIONS: "3", MAX_LOADED_MODELS: "4" },
      async (modelsDir) => {
        await mkdir(join(modelsDir, "loras"));
        await writeTinyLora(join(modelsDir, "loras", "style.safetensors"), {
          layout: "kohya-sdxl",
          strength: 2,
        });
      },
    );
  }, 120_000);
  afterAll(async () => {
    await concurrent?.close();
  });

  it("requests with different sets never share a UNet run; requests with the same set do", async () => {
    const spec = (prompt: string) => smallSpec({ conditioning: { prompt }, scheduler: { steps: 12 } });
    // Built once beforehand, so the three below start together.
    await generate(concurrent, { spec: spec("a heron <lora:style:1>") });
    const [plain, styledA, styledB] = await Promise.all(
      ["a heron", "a heron <lora:style:1>", "a heron <lora:style:1>"].map((p) =>
        generate(concurrent, { spec: spec(p) }),
      ),
    );
    expect(plain?.done?.sharedSteps).toBe(0);
    expect(styledA?.done?.sharedSteps).toBeGreaterThan(0);
    expect(styledB?.done?.sharedSteps).toBeGreaterThan(0);
    // Sharing changes nothing in the images.
    const [alone] = (await generate(concurrent, { spec: spec("a heron <lora:style:1>") })).images;
    expect(styledA?.images[0]?.image?.data).toEqual(alone?.image?.data);
  });
});
