import { create } from "@bufbuild/protobuf";
import { GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { BatchAxisSchema } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { expandBatch, MAX_BATCH_ITEMS } from "../src/batches/expand-batch.js";

const base = create(GenerationSpecSchema, {
  conditioning: { prompt: "a harbour", negativePrompt: "blurry" },
  size: { width: 512, height: 512 },
  scheduler: { steps: 20 },
  params: { seed: 1n, guidanceScale: 7 },
});
const axis = (field: string, ...values: string[]) => create(BatchAxisSchema, { field, valuesJson: values });

function fieldError(run: () => unknown): InvalidArgumentError {
  try {
    run();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error("no error");
}

describe("expandBatch", () => {
  it("merges explicit items over the base: set fields win, the rest is the base's", () => {
    const specs = expandBatch(
      base,
      [
        create(GenerationSpecSchema, { conditioning: { prompt: "a lighthouse" } }),
        create(GenerationSpecSchema, { params: { seed: 9n }, size: { width: 768, height: 512 } }),
      ],
      [],
    );
    expect(specs).toHaveLength(2);
    expect(specs[0]?.conditioning?.prompt).toBe("a lighthouse");
    expect(specs[0]?.conditioning?.negativePrompt).toBe("blurry");
    expect(specs[0]?.params?.seed).toBe(1n);
    expect(specs[1]?.conditioning?.prompt).toBe("a harbour");
    expect(specs[1]?.params?.seed).toBe(9n);
    expect(specs[1]?.params?.guidanceScale).toBe(7);
    expect(specs[1]?.size).toMatchObject({ width: 768, height: 512 });
  });

  it("takes the product of axes, the last axis varying fastest", () => {
    const specs = expandBatch(
      base,
      [],
      [
        axis("conditioning.prompt", '"a cat"', '"a dog"'),
        axis("params.seed", "1", "2", "3"),
        axis("params.guidanceScale", "4.5"),
      ],
    );
    expect(
      specs.map((s) => `${s.conditioning?.prompt}/${s.params?.seed}/${s.params?.guidanceScale}`),
    ).toEqual(["a cat/1/4.5", "a cat/2/4.5", "a cat/3/4.5", "a dog/1/4.5", "a dog/2/4.5", "a dog/3/4.5"]);
    // Fields no axis touches keep the base's values; a path through an unset message creates it.
    expect(specs.every((s) => s.conditioning?.negativePrompt === "blurry" && s.scheduler?.steps === 20)).toBe(
      true,
    );
    const scheduled = expandBatch(create(GenerationSpecSchema), [], [axis("scheduler.steps", "4", "8")]);
    expect(scheduled.map((s) => s.scheduler?.steps)).toEqual([4, 8]);
  });

  it("gives the base alone when there are neither items nor axes", () => {
    expect(expandBatch(base, [], [])).toEqual([base]);
  });

  it("refuses items and axes together", () => {
    expect(fieldError(() => expandBatch(base, [base], [axis("params.seed", "1")])).field).toBe("axes");
  });

  it("bounds the number of items", () => {
    const many = Array.from({ length: MAX_BATCH_ITEMS + 1 }, () => base);
    expect(fieldError(() => expandBatch(base, many, [])).field).toBe("items");
    const values = Array.from({ length: 101 }, (_, i) => String(i));
    const product = fieldError(() =>
      expandBatch(
        base,
        [],
        [axis("params.seed", ...values), axis("scheduler.steps", ...values.slice(1, 11))],
      ),
    );
    expect(product.field).toBe("axes");
    expect(product.message).toContain("1010 items");
    expect(
      expandBatch(
        base,
        [],
        [axis("params.seed", ...values.slice(0, 100)), axis("scheduler.steps", ...values.slice(1, 11))],
      ),
    ).toHaveLength(1000);
  });

  it("names the offending axis value", () => {
    const bad = fieldError(() =>
      expandBatch(base, [], [axis("params.seed", "1"), axis("conditioning.prompt", '"ok"', "not json")]),
    );
    expect(bad.field).toBe("axes[1].values_json[1]");
    expect(bad.message).toContain("not json");
    expect(fieldError(() => expandBatch(base, [], [axis("", "1")])).field).toBe("axes[0].field");
    expect(fieldError(() => expandBatch(base, [], [axis("params.seed")])).field).toBe("axes[0].values_json");
  });

  it("names a value that does not fit the spec field", () => {
    const err = fieldError(() =>
      expandBatch(base, [], [axis("scheduler.steps", "4"), axis("params.seed", "1", '"many"')]),
    );
    expect(err.field).toBe("axes[1].values_json[1]");
    expect(err.message).toContain('spec field "params.seed"');
    const unknown = fieldError(() => expandBatch(base, [], [axis("params.colour", "1")]));
    expect(unknown.field).toBe("axes[0].values_json[0]");
    expect(unknown.message).toContain("colour");
  });
});

describe("an axis over a LoRA's weight", () => {
  it("sets adapters.<name>.weight, adding the entry or keeping the base's other fields", () => {
    const withLora = create(GenerationSpecSchema, {
      conditioning: { prompt: "a harbour" },
      adapters: [
        { name: "other", weight: 0.5 },
        { name: "ink.v1", weight: 1, textEncoderWeight: 0.25 },
      ],
    });
    const specs = expandBatch(withLora, [], [axis("adapters.ink.v1.weight", "0", "0.5", "-1")]);
    expect(specs.map((s) => s.adapters.map((a) => [a.name, a.weight, a.textEncoderWeight]))).toEqual([
      [
        ["other", 0.5, undefined],
        ["ink.v1", 0, 0.25],
      ],
      [
        ["other", 0.5, undefined],
        ["ink.v1", 0.5, 0.25],
      ],
      [
        ["other", 0.5, undefined],
        ["ink.v1", -1, 0.25],
      ],
    ]);
    const added = expandBatch(base, [], [axis("adapters.style.textEncoderWeight", "2")]);
    expect(added[0]?.adapters.map((a) => [a.name, a.weight, a.textEncoderWeight])).toEqual([
      ["style", undefined, 2],
    ]);
    expect(fieldError(() => expandBatch(base, [], [axis("adapters.style.weight", '"heavy"')])).field).toBe(
      "axes[0].values_json[0]",
    );
  });
});
