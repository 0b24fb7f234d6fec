import { InvalidArgumentError } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { checkAdapterName, combineLoraTags, extractLoraTags, LIMITS } from "../src/index.js";

function refusal(text: string, field = "spec.conditioning.prompt"): InvalidArgumentError {
  try {
    extractLoraTags(text, field);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return error as InvalidArgumentError;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`);
}

describe("extractLoraTags", () => {
  it("cuts tags out leaving nothing in their place, as A1111 does", () => {
    expect(extractLoraTags("a cat <lora:style:0.8>, sitting")).toEqual({
      text: "a cat , sitting",
      tags: [{ name: "style", textEncoderWeight: 0.8, unetWeight: 0.8 }],
    });
    expect(extractLoraTags("no tags (here:1.2)")).toEqual({ text: "no tags (here:1.2)", tags: [] });
  });

  it("weight 1 when omitted; TE and UNET positional; te= and unet= named, overriding", () => {
    const { tags } = extractLoraTags(
      "<lora:a> <lora:b:0.5:1.5> <lora:c:te=0.25> <lora:d:unet=2> <lora:e:0.5:unet=0> <lora:f:1:2:te=3>",
    );
    expect(tags).toEqual([
      { name: "a", textEncoderWeight: 1, unetWeight: 1 },
      { name: "b", textEncoderWeight: 0.5, unetWeight: 1.5 },
      { name: "c", textEncoderWeight: 0.25, unetWeight: 0.25 },
      { name: "d", textEncoderWeight: 1, unetWeight: 2 },
      { name: "e", textEncoderWeight: 0.5, unetWeight: 0 },
      // A1111: te= overrides the positional TE; the positional UNET still stands.
      { name: "f", textEncoderWeight: 3, unetWeight: 2 },
    ]);
  });

  it("negative weights, numbers as Python's float() reads them, the lyco alias, names with spaces", () => {
    const { tags, text } = extractLoraTags("x<lora:neg:-0.7>y<lyco:my style: .5 :1e-1><lora:z:+2.>");
    expect(text).toBe("xy");
    expect(tags).toEqual([
      { name: "neg", textEncoderWeight: -0.7, unetWeight: -0.7 },
      { name: "my style", textEncoderWeight: 0.5, unetWeight: 0.1 },
      { name: "z", textEncoderWeight: 2, unetWeight: 2 },
    ]);
  });

  it("several tags combined; the same name twice acts as A1111's one object applied twice", () => {
    const { tags } = extractLoraTags("<lora:a:0.5> <lora:b:1> <lora:a:0.3:0.2>");
    expect(combineLoraTags(tags)).toEqual([
      { name: "a", textEncoderWeight: 0.6, unetWeight: 0.4 },
      { name: "b", textEncoderWeight: 1, unetWeight: 1 },
    ]);
  });

  it("refuses what A1111 would skip unseen, naming the field and quoting a short prefix", () => {
    const cases: [string, string][] = [
      ["<hypernet:x:1>", '"<hypernet:x:1>": only <lora:…> tags are supported'],
      ["<lora:x:abc>", '"<lora:x:abc>": weight "abc" is not a number'],
      ["<lora:x:1:nan>", '"<lora:x:1:nan>": unet weight "nan" is not a number'],
      ["<lora:x:inf>", '"<lora:x:inf>": weight "inf" is not a number'],
      ["<lora:x:11>", '"<lora:x:11>": weight 11 is outside [-10, 10]'],
      ["<lora:x:1:1:4>", '"<lora:x:1:1:4>": takes at most NAME:TE:UNET'],
      ["<lora:x:dyn=4>", '"<lora:x:dyn=4>": dynamic rank (dyn) is not supported'],
      ["<lora:x:lbw=1>", '"<lora:x:lbw=1>": unknown argument "lbw"'],
      ["<lora::1>", '"<lora::1>": names no LoRA'],
      ["<lora:te=1>", '"<lora:te=1>": names no LoRA'],
      [
        "<lora:../../etc/passwd:1>",
        '"<lora:../../etc/passwd:1>": name "../../etc/passwd" is not a file stem',
      ],
      ["<lora:..:1>", '"<lora:..:1>": name ".." is not a file stem'],
    ];
    for (const [text, message] of cases) {
      const error = refusal(text, "spec.conditioning.prompt_2");
      expect(error.field).toBe("spec.conditioning.prompt_2");
      expect(error.message).toBe(`spec.conditioning.prompt_2: ${message}`);
    }
    const long = `<lora:${"n".repeat(LIMITS.maxAdapterNameChars + 1)}:1>`;
    expect(refusal(long).message).toMatch(
      /^spec\.conditioning\.prompt: ".{40}…": name ".{40}…" is longer than 128 characters$/,
    );
  });

  it("bounds the number of tags", () => {
    const many = Array.from({ length: LIMITS.maxAdapters + 1 }, (_, i) => `<lora:n${i}:1>`).join(" ");
    expect(refusal(many).message).toBe(
      `spec.conditioning.prompt: holds more than ${LIMITS.maxAdapters} LoRA tags`,
    );
    expect(extractLoraTags(many.slice(0, many.lastIndexOf(" "))).tags).toHaveLength(LIMITS.maxAdapters);
  });
});

describe("checkAdapterName", () => {
  it("accepts file stems and refuses paths and control characters", () => {
    expect(checkAdapterName("spec.adapters[0].name", "Detail Tweaker v1.1")).toBe("Detail Tweaker v1.1");
    for (const bad of ["a/b", "a\\b", "a\u0000b", "a\nb", ""]) {
      expect(() => checkAdapterName("spec.adapters[0].name", bad)).toThrow(/^spec\.adapters\[0\]\.name: /);
    }
  });
});
