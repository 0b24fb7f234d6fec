import {
  AlgorithmType,
  SchedulerKind,
  SigmaSchedule,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { SAMPLER_NAMES } from "@dmesh/spec";
import { describe, expect, it } from "vitest";
import { GENERATE_HELP } from "../src/commands/generate.js";
import { adaptersFromFlag } from "../src/lora-flag.js";
import { specFromFlags } from "../src/spec-options.js";

const defaults = { width: 512, height: 512, steps: 20 };

describe("--scheduler", () => {
  it("sets the family and the options its name implies", () => {
    expect(specFromFlags("a cat", { scheduler: "dpmpp_2m_sde_karras" }, defaults).scheduler).toEqual({
      steps: 20,
      kind: SchedulerKind.DPMPP_2M,
      algorithmType: AlgorithmType.SDE_DPMSOLVER_PLUS_PLUS,
      solverOrder: 2,
      sigmaSchedule: SigmaSchedule.KARRAS,
    });
    expect(specFromFlags("a cat", { scheduler: "plms" }, defaults).scheduler).toEqual({
      steps: 20,
      kind: SchedulerKind.PNDM,
    });
  });
  it("refuses a name the table does not have, listing the samplers", () => {
    expect(() => specFromFlags("a cat", { scheduler: "ddim_karras" }, defaults)).toThrow(
      /--scheduler: unknown sampler "ddim_karras"; expected euler\|euler_a\|/,
    );
  });
  it("refuses DPM++ SDE with the reason and what to use instead", () => {
    expect(() => specFromFlags("a cat", { scheduler: "dpmpp_sde_karras" }, defaults)).toThrow(
      /^--scheduler: DPM\+\+ SDE .*BrownianTree.*dpmpp_2m_sde/,
    );
  });
  it("the generate help lists every sampler of the table", () => {
    for (const sampler of SAMPLER_NAMES.filter((s) => !s.readOnly))
      expect(GENERATE_HELP).toContain(sampler.cli);
  });
});

describe("--sampler and --schedule (AUTOMATIC1111's names)", () => {
  it("set the same fields as the CLI name", () => {
    expect(
      specFromFlags("a cat", { sampler: "DPM++ 2M SDE", schedule: "Karras" }, defaults).scheduler,
    ).toEqual(specFromFlags("a cat", { scheduler: "dpmpp_2m_sde_karras" }, defaults).scheduler);
    expect(specFromFlags("a cat", { sampler: "DPM++ 2M Karras" }, defaults).scheduler).toMatchObject({
      kind: SchedulerKind.DPMPP_2M,
      sigmaSchedule: SigmaSchedule.KARRAS,
    });
    expect(specFromFlags("a cat", { sampler: "plms" }, defaults).scheduler).toEqual({
      steps: 20,
      kind: SchedulerKind.PNDM,
    });
  });
  it("refuse what they cannot honour, each with a clear message", () => {
    const fails = (flags: Record<string, string>) => () => specFromFlags("a cat", flags, defaults);
    expect(fails({ sampler: "DPM adaptive" })).toThrow(
      /^--sampler: unknown sampler "DPM adaptive"; expected Euler, /,
    );
    expect(fails({ sampler: "DPM++ SDE", schedule: "Karras" })).toThrow(
      /^--sampler: DPM\+\+ SDE .*BrownianTree/,
    );
    expect(fails({ sampler: "Euler", schedule: "Polyexponential" })).toThrow(
      /^--schedule: unknown schedule type/,
    );
    expect(fails({ schedule: "Karras" })).toThrow(/^--schedule needs --sampler/);
    expect(fails({ sampler: "Euler", scheduler: "euler" })).toThrow(/give one/);
  });
  it("the generate help names the A1111 samplers and schedule types", () => {
    expect(GENERATE_HELP).toContain('--sampler "Euler"|"Euler a"');
    expect(GENERATE_HELP).toContain('"Karras"|"Exponential"');
  });
});

describe("--lora", () => {
  it("takes NAME or NAME:WEIGHT, repeatable, negative weights allowed", () => {
    expect(adaptersFromFlag(["ink:0.5", "style", "detail:-1", "v1:2:0.5"])).toEqual([
      { name: "ink", weight: 0.5 },
      { name: "style" },
      { name: "detail", weight: -1 },
      { name: "v1:2", weight: 0.5 },
    ]);
    expect(adaptersFromFlag(undefined)).toEqual([]);
    expect(() => adaptersFromFlag(["ink:heavy"])).toThrow(
      '--lora expects NAME or NAME:WEIGHT, got "ink:heavy"',
    );
    expect(() => adaptersFromFlag([":1"])).toThrow("--lora expects NAME or NAME:WEIGHT");
  });
});
