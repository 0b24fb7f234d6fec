import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type GenerationSpec, GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { adapterSetKey, validateGenerationSpec } from "../src/index.js";

type SpecInit = Exclude<MessageInitShape<typeof GenerationSpecSchema>, GenerationSpec>;

const resolve = (init: SpecInit) =>
  validateGenerationSpec(create(GenerationSpecSchema, { size: { width: 64, height: 64 }, ...init }));

function refusal(init: Parameters<typeof resolve>[0]): InvalidArgumentError {
  try {
    resolve(init);
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error("accepted");
}

describe("a request's LoRA set", () => {
  it("takes the adapter list, then tags cut from every prompt; weight 1 when omitted, negatives allowed", () => {
    const spec = resolve({
      conditioning: { prompt: "a fox <lora:ink:0.5>, snow", negativePrompt: "blurry <lora:bad:-1>" },
      adapters: [{ name: "style" }, { name: "detail", weight: 0.25, textEncoderWeight: 0 }],
    });
    expect(spec.prompt).toBe("a fox , snow");
    expect(spec.prompt2).toBe("a fox , snow");
    expect(spec.negativePrompt).toBe("blurry ");
    expect(spec.adapters).toEqual([
      { name: "style", unetWeight: 1, textEncoderWeight: 1, field: "spec.adapters[0].name" },
      { name: "detail", unetWeight: 0.25, textEncoderWeight: 0, field: "spec.adapters[1].name" },
      { name: "ink", unetWeight: 0.5, textEncoderWeight: 0.5, field: "spec.conditioning.prompt" },
      { name: "bad", unetWeight: -1, textEncoderWeight: -1, field: "spec.conditioning.negative_prompt" },
    ]);
  });

  it("refuses a name given twice, wherever, naming the second place", () => {
    const twice = refusal({ conditioning: { prompt: "a <lora:ink:1>", negativePrompt: "<lora:ink:-1>" } });
    expect(twice.field).toBe("spec.conditioning.negative_prompt");
    expect(twice.message).toContain('names LoRA "ink", which spec.conditioning.prompt already names');
    const listed = refusal({ conditioning: { prompt: "a <lora:ink>" }, adapters: [{ name: "ink" }] });
    expect(listed.field).toBe("spec.conditioning.prompt");
    expect(refusal({ conditioning: { prompt: "a" }, adapters: [{ name: "x", weight: 11 }] }).field).toBe(
      "spec.adapters[0].weight",
    );
    expect(refusal({ conditioning: { prompt: "a" }, adapters: [{ name: "../x" }] }).field).toBe(
      "spec.adapters[0].name",
    );
  });

  it("keys a set by names and float32 weights, whatever the order or the way it was given", () => {
    const a = resolve({ conditioning: { prompt: "x <lora:a:0.7> <lora:b>" } }).adapters;
    const b = resolve({
      conditioning: { prompt: "y" },
      adapters: [{ name: "b" }, { name: "a", weight: 0.7 }],
    }).adapters;
    expect(adapterSetKey(a)).toBe(adapterSetKey(b));
    expect(adapterSetKey(a)).not.toBe(
      adapterSetKey(resolve({ conditioning: { prompt: "x <lora:a:0.7>" } }).adapters),
    );
  });
});
