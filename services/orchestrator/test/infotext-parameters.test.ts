import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AlgorithmType,
  GenerationSpecSchema,
  SchedulerKind,
  SchedulerSpecSchema,
  SigmaSchedule,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { describe, expect, it } from "vitest";
import { infotextParameters } from "../src/sessions/infotext-parameters.js";

function names(scheduler: Record<string, unknown>) {
  const spec = create(GenerationSpecSchema, { conditioning: { prompt: "a cat" }, scheduler });
  const { sampler, scheduleType } = infotextParameters(spec, 1n, { width: 64, height: 64 }, "tiny");
  return { sampler, scheduleType };
}

describe("infotext sampler names", () => {
  it("writes A1111's Sampler and Schedule type from the scheduler table", () => {
    expect(names({ kind: SchedulerKind.DPMPP_2M, karrasSigmas: true })).toEqual({
      sampler: "DPM++ 2M",
      scheduleType: "Karras",
    });
    expect(
      names({
        kind: SchedulerKind.DPM_SOLVER_SINGLESTEP,
        algorithmType: AlgorithmType.SDE_DPMSOLVER_PLUS_PLUS,
        sigmaSchedule: SigmaSchedule.EXPONENTIAL,
      }),
    ).toEqual({ sampler: "DPM++ 2S SDE", scheduleType: "Exponential" });
    expect(names({ kind: SchedulerKind.KDPM2_ANCESTRAL, sigmaSchedule: SigmaSchedule.BETA })).toEqual({
      sampler: "DPM2 a",
      scheduleType: "Beta",
    });
    expect(names({ kind: SchedulerKind.PNDM })).toEqual({ sampler: "PLMS", scheduleType: "" });
    expect(names({ kind: SchedulerKind.UNIPC, sigmaSchedule: SigmaSchedule.DEFAULT })).toEqual({
      sampler: "UniPC",
      scheduleType: "",
    });
    expect(names({})).toEqual({ sampler: "Euler", scheduleType: "" });
  });
});

describe("the infotext names the scheduler that ran", () => {
  it("takes the replica's report over the spec: the model's own PLMS when the spec names no kind", () => {
    const spec = create(GenerationSpecSchema, { conditioning: { prompt: "a cat" }, scheduler: { steps: 9 } });
    const ran = create(SchedulerSpecSchema, { kind: SchedulerKind.PNDM, steps: 9 });
    const written = infotextParameters(spec, 1n, { width: 64, height: 64 }, "sd15", undefined, [], ran);
    expect([written.sampler, written.scheduleType, written.steps]).toEqual(["PLMS", "", 9]);
    const karras = create(SchedulerSpecSchema, {
      kind: SchedulerKind.EULER,
      sigmaSchedule: SigmaSchedule.KARRAS,
    });
    const sdxl = infotextParameters(spec, 1n, { width: 64, height: 64 }, "tiny", undefined, [], karras);
    expect([sdxl.sampler, sdxl.scheduleType]).toEqual(["Euler", "Karras"]);
  });
});

describe("infotext of adapters", () => {
  it("keeps the prompt's tags, writes spec.adapters as tags, and adds what inference reported", () => {
    const spec = create(GenerationSpecSchema, { conditioning: { prompt: "a cat <lora:ink:0.5>, shiny" } });
    const params = infotextParameters(spec, 1n, { width: 64, height: 64 }, "tiny", undefined, [
      { key: "Lora hashes", value: "ink: 0123456789ab" },
      { key: "TI hashes", value: "shiny: aaaabbbbcccc" },
    ]);
    expect(params.prompt).toBe("a cat <lora:ink:0.5>, shiny");
    expect(params.extra).toEqual({ "Lora hashes": "ink: 0123456789ab", "TI hashes": "shiny: aaaabbbbcccc" });
    const listed = create(GenerationSpecSchema, {
      conditioning: { prompt: "a cat" },
      adapters: [
        { name: "ink", weight: 0.7 },
        { name: "style", weight: 1, textEncoderWeight: 0.25 },
      ],
    });
    // Weights as they travel (float32) are written as given.
    const wire = fromBinary(GenerationSpecSchema, toBinary(GenerationSpecSchema, listed));
    expect(infotextParameters(wire, 1n, { width: 64, height: 64 }, "tiny").prompt).toBe(
      "a cat <lora:ink:0.7> <lora:style:0.25:1>",
    );
  });
});
