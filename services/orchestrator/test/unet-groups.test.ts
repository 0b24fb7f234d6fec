import { create } from "@bufbuild/protobuf";
import { GenerationSpecSchema, SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { estimateActivationBytes, validateGenerationSpec } from "@dmesh/spec";
import { describe, expect, it } from "vitest";
import { nextGroup, unetGroupKey, unetProfile } from "../src/batches/unet-groups.js";

const spec = (
  over: { seed?: number; size?: number; steps?: number; guidance?: number; count?: number } = {},
) =>
  validateGenerationSpec(
    create(GenerationSpecSchema, {
      conditioning: { prompt: `a lighthouse, seed ${over.seed ?? 1}` },
      size: { width: over.size ?? 128, height: over.size ?? 128 },
      scheduler: { kind: SchedulerKind.EULER, steps: over.steps ?? 8 },
      params: { seed: BigInt(over.seed ?? 1), guidanceScale: over.guidance ?? 5 },
      output: { count: over.count ?? 1 },
    }),
  );

describe("which batch items denoise together", () => {
  it("keys by what keeps UNet runs mergeable and in step, not by prompt or seed", () => {
    expect(unetGroupKey(spec({ seed: 1 }))).toBe(unetGroupKey(spec({ seed: 2 })));
    expect(unetGroupKey(spec())).not.toBe(unetGroupKey(spec({ size: 256 })));
    expect(unetGroupKey(spec())).not.toBe(unetGroupKey(spec({ steps: 9 })));
    expect(unetGroupKey(spec())).not.toBe(unetGroupKey(spec({ guidance: 1 })));
    expect(unetGroupKey(spec({ guidance: 5 }))).toBe(unetGroupKey(spec({ guidance: 7 })));
    expect(unetProfile(spec({ count: 2 }))).toMatchObject({
      images: 2,
      bytesPerImage: estimateActivationBytes(128, 128),
    });
  });

  it("takes compatible items in order within the replica's images, requests and the free slots", () => {
    const items = [spec(), spec({ size: 256 }), spec({ count: 2 }), spec(), spec(), spec()].map(
      (s, index) => ({
        index,
        profile: unetProfile(s),
      }),
    );
    const group = (images: number, requests: number, slots: number) =>
      nextGroup(items, (i) => i.profile, { address: "a", images, requests }, slots).map((i) => i.index);
    // The 256² item is skipped; the two-image item fits only where two more images do.
    expect(group(3, 3, 8)).toEqual([0, 2]);
    expect(group(4, 3, 8)).toEqual([0, 2, 3]);
    expect(group(2, 8, 8)).toEqual([0, 3]);
    expect(group(8, 8, 8)).toEqual([0, 2, 3, 4, 5]);
    expect(group(8, 2, 8)).toEqual([0, 2]);
    expect(group(8, 8, 3)).toEqual([0, 2, 3]);
    // The first item goes even when it alone is more than the replica takes at once.
    expect(
      nextGroup(items.slice(2), (i) => i.profile, { address: "a", images: 1, requests: 1 }, 8),
    ).toHaveLength(1);
  });
});

describe("LoRA sets in UNet groups", () => {
  const withLoras = (prompt: string, adapters: { name: string; weight?: number }[] = []) =>
    validateGenerationSpec(
      create(GenerationSpecSchema, {
        conditioning: { prompt },
        size: { width: 128, height: 128 },
        scheduler: { kind: SchedulerKind.EULER, steps: 8 },
        adapters,
      }),
    );

  it("never groups items with different LoRA sets or weights; a tag and the list are one set", () => {
    const plain = unetGroupKey(withLoras("a fox"));
    const styled = unetGroupKey(withLoras("a fox <lora:style:0.7>"));
    expect(styled).not.toBe(plain);
    expect(styled).not.toBe(unetGroupKey(withLoras("a fox <lora:style:0.8>")));
    expect(styled).toBe(unetGroupKey(withLoras("an owl", [{ name: "style", weight: 0.7 }])));
    expect(unetGroupKey(withLoras("a <lora:a:1> <lora:b:-1>"))).toBe(
      unetGroupKey(withLoras("b <lora:b:-1> <lora:a>")),
    );
  });
});
