import { InvalidArgumentError } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { formatInfotext } from "../../src/infotext/format-infotext.js";
import type { GenerationParameters } from "../../src/infotext/generation-parameters.js";
import { pythonNumber, quoteInfotextValue } from "../../src/infotext/infotext-value.js";
import { parametersFromInfotext } from "../../src/infotext/parameters-from-infotext.js";
import { parseInfotext } from "../../src/infotext/parse-infotext.js";

const sdxl: GenerationParameters = {
  prompt: "a lighthouse at dusk, volumetric light",
  negativePrompt: "blurry, lowres",
  steps: 20,
  sampler: "Euler a",
  scheduleType: "Automatic",
  cfgScale: 7,
  seed: 42,
  width: 1024,
  height: 1024,
  modelHash: "31e35c80fc",
  model: "sd_xl_base_1.0",
  version: "dmesh 0.1.0",
};

describe("formatInfotext", () => {
  it("writes A1111's layout and key order", () => {
    expect(formatInfotext(sdxl)).toBe(
      "a lighthouse at dusk, volumetric light\n" +
        "Negative prompt: blurry, lowres\n" +
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 42, Size: 1024x1024, " +
        "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: dmesh 0.1.0",
    );
  });

  it("omits the negative line when empty, Clip skip at 1, and keeps extras before Version", () => {
    const text = formatInfotext({
      ...sdxl,
      negativePrompt: "",
      clipSkip: 1,
      denoisingStrength: 0.75,
      extra: {
        "Hires upscale": 2,
        "Hires upscaler": "Latent",
        "Lora hashes": "detail: 0123abcd, style: 4567ef01",
      },
    });
    expect(text).toBe(
      "a lighthouse at dusk, volumetric light\n" +
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 42, Size: 1024x1024, " +
        "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.75, Hires upscale: 2, " +
        'Hires upscaler: Latent, Lora hashes: "detail: 0123abcd, style: 4567ef01", Version: dmesh 0.1.0',
    );
  });

  it("quotes values with a comma, colon or newline as json.dumps(ensure_ascii=False) does", () => {
    expect(quoteInfotextValue("plain value")).toBe("plain value");
    expect(quoteInfotextValue('say "hi"')).toBe('say "hi"'); // quotes alone are not quoted by A1111
    expect(quoteInfotextValue('a "b", c')).toBe('"a \\"b\\", c"');
    expect(quoteInfotextValue("line\nbreak")).toBe('"line\\nbreak"');
    expect(quoteInfotextValue("modèle: 猫")).toBe('"modèle: 猫"');
    expect(quoteInfotextValue("tab\t, back\\slash")).toBe('"tab\\t, back\\\\slash"');
  });

  it("prints numbers as Python does, booleans as True/False, and a value equal to its key alone", () => {
    expect(pythonNumber(0.75)).toBe("0.75");
    expect(pythonNumber(1e-5)).toBe("1e-05");
    expect(pythonNumber(0.0001)).toBe("0.0001");
    expect(pythonNumber(1.5e16)).toBe("1.5e+16");
    expect(pythonNumber(3804583583)).toBe("3804583583");
    const text = formatInfotext({
      prompt: "p",
      steps: 4,
      extra: { Tiling: "Tiling", "Downcast alphas_cumprod": true },
    });
    expect(text).toBe("p\nSteps: 4, Tiling, Downcast alphas_cumprod: True");
  });

  it("lets an extra replace a standard key in place, as a Python dict update does", () => {
    expect(formatInfotext({ prompt: "p", steps: 4, sampler: "Euler", extra: { Steps: "8" } })).toBe(
      "p\nSteps: 8, Sampler: Euler",
    );
  });

  it("rejects values that would not read back, naming the field", () => {
    const bad: Array<[GenerationParameters, string]> = [
      [{ prompt: "p", steps: 2.5 }, "steps"],
      [{ prompt: "p", cfgScale: Number.NaN }, "cfgScale"],
      [{ prompt: "p", width: 512 }, "height"],
      [{ prompt: "p", extra: { "bad:key": "x" } }, "extra.bad:key"],
      [{ prompt: "p", extra: { ok: Number.POSITIVE_INFINITY } }, "extra.ok"],
    ];
    for (const [params, field] of bad) {
      expect(() => formatInfotext(params)).toThrow(InvalidArgumentError);
      expect(() => formatInfotext(params)).toThrow(expect.objectContaining({ field }));
    }
  });
});

describe("parseInfotext on real A1111 infotexts", () => {
  it("reads the example in A1111's parse_generation_parameters docstring", () => {
    const text =
      "girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), detailed, intricate\n" +
      "Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing\n" +
      "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b";
    const parsed = parseInfotext(text);
    expect(parsed.prompt).toMatch(/^girl with an artist's beret, .*, intricate$/);
    expect(parsed.negativePrompt).toMatch(/^ugly, fat, .*, messy drawing$/);
    expect(parsed.fields).toEqual({
      Steps: "20",
      Sampler: "Euler a",
      "CFG scale": "7",
      Seed: "965400086",
      "Size-1": "512",
      "Size-2": "512",
      "Model hash": "45dee52b",
    });
  });

  it("reads a v1.9.4 infotext with quoted hash lists (from an A1111 extension's notes)", () => {
    const text =
      "1girl,A superstar on stage.,, <lora:LCM_15:1>, <lora:ip-adapter-faceid-plusv2_sd15_lora:1>\n" +
      "Negative prompt: MajicNegative_V2,badhandv4,\n" +
      "Steps: 6, Sampler: LCM, Schedule type: Automatic, CFG scale: 1.5, Seed: 3748719078, Size: 768x1024, " +
      "Model hash: 19bbe9faa4, Model: fantasticmix_k2, VAE hash: 07af11b95c, VAE: vae-ft-mse-840000-ema-pruned.safetensors, " +
      'Clip skip: 2, Lora hashes: "LCM_15: aaebf6360f7d, ip-adapter-faceid-plusv2_sd15_lora: a95a0f4bdcb9", ' +
      'TI hashes: "MajicNegative_V2: a53884ef726b, badhandv4: 5e40d722fc3d", Downcast alphas_cumprod: True, Version: v1.9.4';
    const parsed = parseInfotext(text);
    expect(parsed.negativePrompt).toBe("MajicNegative_V2,badhandv4,");
    expect(parsed.fields["Lora hashes"]).toBe(
      "LCM_15: aaebf6360f7d, ip-adapter-faceid-plusv2_sd15_lora: a95a0f4bdcb9",
    );
    expect(parsed.fields["TI hashes"]).toBe("MajicNegative_V2: a53884ef726b, badhandv4: 5e40d722fc3d");
    expect(parsed.fields["Downcast alphas_cumprod"]).toBe("True");
    const params = parametersFromInfotext(parsed);
    expect(params).toMatchObject({
      steps: 6,
      sampler: "LCM",
      scheduleType: "Automatic",
      cfgScale: 1.5,
      seed: 3748719078,
      width: 768,
      height: 1024,
      vae: "vae-ft-mse-840000-ema-pruned.safetensors",
      clipSkip: 2,
      version: "v1.9.4",
    });
    // Writing it back gives the text A1111 wrote.
    expect(formatInfotext(params)).toBe(text);
  });

  it("reads an infotext posted in an issue, keeping a non-size 'AxB' value whole", () => {
    const text =
      "dress, black hair, seashore\n" +
      "Negative prompt: easynegative, worst quality, bad-hands-5, bad-artist bad_prompt_version2:0.5, 3 hands, 3 legs\n" +
      "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 5.0, Seed: 3804583583, Size: 512x768, Model hash: 4cf7896571, Model: anime_world_by_Timmek, Seed resize from: -1x-1, Denoising strength: 0";
    const parsed = parseInfotext(text);
    expect(parsed.fields["Seed resize from"]).toBe("-1x-1");
    expect(parsed.fields["CFG scale"]).toBe("5.0");
    expect(parametersFromInfotext(parsed)).toMatchObject({ cfgScale: 5, denoisingStrength: 0, width: 512 });
  });

  it("treats a last line with fewer than three pairs as prompt, and skips empty values as A1111 does", () => {
    expect(parseInfotext("just a prompt\nwith two lines: here")).toEqual({
      prompt: "just a prompt\nwith two lines: here",
      negativePrompt: "",
      fields: {},
    });
    const parsed = parseInfotext("p\nSteps: 20, Empty: , Sampler: Euler, Seed: 1");
    expect(parsed.fields).toEqual({ Steps: "20", Sampler: "Euler", Seed: "1" });
  });

  it("joins multi-line prompts and negatives the way A1111 does (leading blank lines vanish)", () => {
    const parsed = parseInfotext(
      "  first  \n\nsecond\nNegative prompt:\nneg one\nneg two\nSteps: 1, Sampler: Euler, Seed: 3",
    );
    expect(parsed.prompt).toBe("first\n\nsecond");
    expect(parsed.negativePrompt).toBe("neg one\nneg two");
  });

  it("splits the older `Sampler: DPM++ 2M Karras` into sampler and schedule type, as A1111 1.9 reads it", () => {
    const old = parametersFromInfotext(parseInfotext("a cat\nSteps: 20, Sampler: DPM++ 2M Karras, Seed: 1"));
    expect(old).toMatchObject({ sampler: "DPM++ 2M", scheduleType: "Karras" });
    const current = parametersFromInfotext(
      parseInfotext("a cat\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, Seed: 1"),
    );
    expect(current).toMatchObject({ sampler: "DPM++ 2M", scheduleType: "Karras" });
    const plain = parametersFromInfotext(parseInfotext("a cat\nSteps: 20, Sampler: DPM2 a, Seed: 1"));
    expect(plain.sampler).toBe("DPM2 a");
    expect(plain).not.toHaveProperty("scheduleType");
  });
  it("reports a typed field that is not a number with its infotext key", () => {
    const parsed = parseInfotext("p\nSteps: twenty, Sampler: Euler, Seed: 3");
    expect(() => parametersFromInfotext(parsed)).toThrow(
      expect.objectContaining({ field: "infotext.Steps" }),
    );
  });
});

describe("round trip", () => {
  const cases: GenerationParameters[] = [
    sdxl,
    {
      prompt: "portrait of a cat: oil painting\n(masterpiece), 猫, ünïcödé",
      negativePrompt: 'text, "watermark"\nsecond negative line',
      steps: 30,
      sampler: "DPM++ 2M",
      scheduleType: "Karras",
      cfgScale: 6.5,
      imageCfgScale: 1.5,
      seed: 4294967295,
      width: 832,
      height: 1216,
      modelHash: "e6bb9ea85b",
      model: "model, custom: v2",
      vaeHash: "235745af8d",
      vae: 'sdxl_vae "fixed".safetensors',
      variationSeed: 7,
      variationSeedStrength: 0.25,
      denoisingStrength: 0.4,
      clipSkip: 2,
      extra: { "Hires resize": "1664x2432", "Lora hashes": "a: 1, b: 2", "Hires steps": "10" },
      version: "v1.10.1",
    },
  ];

  it.each(cases.map((c, i) => [i, c] as const))("case %i reads back what was written", (_, params) => {
    const text = formatInfotext(params);
    expect(parametersFromInfotext(parseInfotext(text))).toEqual(params);
    expect(formatInfotext(parametersFromInfotext(parseInfotext(text)))).toBe(text);
  });
});
