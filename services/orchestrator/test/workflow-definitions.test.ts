import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { DomainError } from "@dmesh/runtime";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase } from "../src/store/database.js";
import { SqliteWorkflowStore } from "../src/store/sqlite-workflow-store.js";
import { BUILTIN_WORKFLOWS } from "../src/workflows/builtin-workflows.js";
import { compileWorkflow, WORKFLOW_LIMITS } from "../src/workflows/validate-definition.js";
import { WorkflowCatalog } from "../src/workflows/workflow-catalog.js";
import type { StepDefinition, WorkflowDefinition } from "../src/workflows/workflow-definition.js";

const step = (
  id: string,
  kind: string,
  inputs: Record<string, string>,
  params: StepDefinition["params"] = {},
): StepDefinition => ({ id, kind, inputs, params, dependsOn: [] });

/** generate → hires (SR model) → safety → encode, with the hires scale bound to a declared input. */
function chain(change: (steps: StepDefinition[]) => void = () => {}): WorkflowDefinition {
  const steps = [
    step("generate", "generate", { spec: "input.spec" }),
    step(
      "hires",
      "hires",
      { spec: "input.spec", image: "generate.images", scale: "input.scale" },
      {
        upscaler: "tiny-x2",
        strength: 0.4,
      },
    ),
    step("safety", "safety", { image: "hires.images" }, { policy: "flag" }),
    step("encode", "encode", { image: "safety.images" }, { format: "png" }),
  ];
  change(steps);
  return {
    id: "sr-chain",
    name: "SR chain",
    description: "",
    categories: ["generation"],
    inputs: [
      { name: "spec", type: "spec", required: true, description: "" },
      { name: "scale", type: "integer", required: false, description: "", default: 2 },
      { name: "prompt", type: "string", required: false, description: "" },
    ],
    steps,
  };
}

/** The INVALID_ARGUMENT the definition gets, as "path: message". */
function problem(definition: WorkflowDefinition): string {
  try {
    compileWorkflow(definition);
  } catch (err) {
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).code).toBe(Code.InvalidArgument);
    // The message starts with the field's path.
    expect((err as Error).message.startsWith(`${(err as DomainError).field}: `)).toBe(true);
    return (err as Error).message;
  }
  return "valid";
}

describe("workflow definitions", () => {
  it("compile the seven built-ins, every step after the steps it reads", () => {
    expect(BUILTIN_WORKFLOWS.map((b) => b.definition.id)).toEqual([
      "txt2img",
      "img2img",
      "inpaint",
      "txt2img-hires",
      "sdxl-refiner",
      "upscale-enhance",
      "style-transfer",
    ]);
    const catalog = new WorkflowCatalog(BUILTIN_WORKFLOWS);
    expect(catalog.get("txt2img-hires").compiled.order).toEqual(["generate", "upscale", "hires", "encode"]);
    expect(catalog.get("txt2img").version).toBe(1);
    expect(catalog.get("txt2img").builtin).toBe(true);
  });

  it("orders a user-defined chain and independent branches", () => {
    expect(compileWorkflow(chain()).order).toEqual(["generate", "hires", "safety", "encode"]);
    const branches = chain((steps) => {
      steps.unshift(step("join", "encode", { image: "left.images" }));
      steps.push(step("left", "enhance", { image: "generate.images" }));
    });
    const order = compileWorkflow(branches).order;
    expect(order.indexOf("left")).toBeLessThan(order.indexOf("join"));
    expect(order.indexOf("generate")).toBeLessThan(order.indexOf("left"));
  });

  it("name an unknown step kind with its path", () => {
    expect(
      problem(chain((s) => s.splice(2, 1, step("safety", "sparkle", { image: "hires.images" })))),
    ).toMatch(/^steps\[2\]\.kind: "sparkle" is not a step kind \(generate, refine, hires/);
  });

  it("name a cycle at the edge that closes it, with the steps on it", () => {
    const cyclic = chain((s) => {
      s[0] = step(
        "generate",
        "generate",
        { spec: "input.spec", image: "safety.images" },
        { mode: "img2img" },
      );
    });
    expect(problem(cyclic)).toBe(
      "steps[1].inputs.image: closes a cycle: generate → hires → safety → generate",
    );
  });

  it("name dangling references: to no step, to no output, to no declared input, in depends_on", () => {
    expect(problem(chain((s) => s.splice(3, 1, step("encode", "encode", { image: "ghost.images" }))))).toBe(
      'steps[3].inputs.image: "ghost.images" names no step',
    );
    expect(problem(chain((s) => s.splice(3, 1, step("encode", "encode", { image: "safety.latents" }))))).toBe(
      'steps[3].inputs.image: "safety.latents": step "safety" has no output "latents"',
    );
    expect(problem(chain((s) => s.splice(3, 1, step("encode", "encode", { image: "input.photo" }))))).toBe(
      'steps[3].inputs.image: "input.photo" names no declared input',
    );
    expect(
      problem(
        chain((s) =>
          s.splice(3, 1, { ...step("encode", "encode", { image: "safety.images" }), dependsOn: ["nope"] }),
        ),
      ),
    ).toBe('steps[3].depends_on[0]: "nope" names no step');
  });

  it("name type mismatches: a string into an image port, a string into a numeric parameter", () => {
    expect(problem(chain((s) => s.splice(3, 1, step("encode", "encode", { image: "input.prompt" }))))).toBe(
      'steps[3].inputs.image: expects images, "input.prompt" is string',
    );
    expect(
      problem(
        chain((s) =>
          s.splice(
            1,
            1,
            step("hires", "hires", { spec: "input.spec", image: "generate.images", scale: "input.prompt" }),
          ),
        ),
      ),
    ).toBe('steps[1].inputs.scale: expects integer, "input.prompt" is string');
    expect(
      problem(
        chain((s) => s.splice(2, 1, step("safety", "safety", { image: "hires.images" }, { policy: 3 }))),
      ),
    ).toBe("steps[2].params.policy: must be a string, got 3");
  });

  it("name a missing required input", () => {
    expect(problem(chain((s) => s.splice(1, 1, step("hires", "hires", { image: "generate.images" }))))).toBe(
      "steps[1].inputs.spec: is required by a hires step",
    );
    expect(
      problem(
        chain((s) =>
          s.splice(0, 1, step("generate", "generate", { spec: "input.spec" }, { mode: "img2img" })),
        ),
      ),
    ).toBe("steps[0].inputs.image: is required by mode img2img");
  });

  it("name a parameter out of range, and one the kind does not have", () => {
    expect(
      problem(
        chain((s) => s.splice(2, 1, step("safety", "upscale", { image: "hires.images" }, { scale: 3 }))),
      ),
    ).toBe("steps[2].params.scale: must be one of 1, 2, 4, got 3");
    expect(
      problem(
        chain((s) =>
          s.splice(
            1,
            1,
            step("hires", "hires", { spec: "input.spec", image: "generate.images" }, { strength: 1.5 }),
          ),
        ),
      ),
    ).toBe("steps[1].params.strength: must be in [0, 1], got 1.5");
    expect(
      problem(
        chain((s) => s.splice(3, 1, step("encode", "encode", { image: "safety.images" }, { quality: 0 }))),
      ),
    ).toBe("steps[3].params.quality: must be in [1, 100], got 0");
    expect(
      problem(
        chain((s) => s.splice(3, 1, step("encode", "encode", { image: "safety.images" }, { colour: "red" }))),
      ),
    ).toMatch(/^steps\[3\]\.params\.colour: .*is not a parameter of this kind \(format, quality, metadata\)/);
  });

  it("enforce limits on size and depth", () => {
    const long = chain((s) => {
      s.splice(3);
      for (let i = 0; i < WORKFLOW_LIMITS.depth; i++)
        s.push(step(`e${i}`, "enhance", { image: `${i === 0 ? "safety" : `e${i - 1}`}.images` }));
      s.push(step("encode", "encode", { image: `e${WORKFLOW_LIMITS.depth - 1}.images` }));
    });
    expect(problem(long)).toMatch(/^steps\[\d+\]: .*is 17 steps deep; the limit is 16/);
    const wide = chain((s) => {
      for (let i = 0; i < WORKFLOW_LIMITS.steps; i++)
        s.push(step(`w${i}`, "enhance", { image: "generate.images" }));
    });
    expect(problem(wide)).toBe(`steps: has 36 steps; the limit is ${WORKFLOW_LIMITS.steps}`);
    expect(problem({ ...chain(), description: "x".repeat(70_000) })).toMatch(
      /^workflow: .*bytes as JSON; the limit is 65536/,
    );
    expect(problem({ ...chain(), id: "Bad Id" })).toMatch(/^id: "Bad Id" must be 1-64 of a-z/);
  });
});

describe("the workflow catalog", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("keeps every version in the store, the newest for submits and each by number, across a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dmesh-workflows-"));
    dirs.push(dir);
    const db = openDatabase(join(dir, "db.sqlite"));
    const catalog = new WorkflowCatalog(BUILTIN_WORKFLOWS, new SqliteWorkflowStore(db));
    await catalog.load();
    expect((await catalog.create(chain())).version).toBe(1);
    await expect(catalog.create(chain())).rejects.toThrow(/workflow "sr-chain" exists; update it instead/);
    const v2 = chain((s) => {
      s[2] = step("safety", "safety", { image: "hires.images" }, { policy: "reject" });
    });
    expect((await catalog.update(v2)).version).toBe(2);
    await expect(catalog.update({ ...chain(), id: "txt2img" })).rejects.toThrow(/built in and read-only/);
    catalog.recordUse("sr-chain");
    await catalog.remove("sr-chain");
    expect(() => catalog.get("sr-chain")).toThrow(/no workflow "sr-chain"/);
    db.close();

    const reopened = openDatabase(join(dir, "db.sqlite"));
    const again = new WorkflowCatalog(BUILTIN_WORKFLOWS, new SqliteWorkflowStore(reopened));
    await again.load();
    // A session submitted with version 1 still finds it after the update and the delete.
    expect(again.get("sr-chain", 1).definition.steps[2]?.params).toEqual({ policy: "flag" });
    expect(again.get("sr-chain", 2).definition.steps[2]?.params).toEqual({ policy: "reject" });
    expect(again.usageOf("sr-chain")).toBe(1);
    expect((await again.create(chain())).version).toBe(3);
    expect(again.get("sr-chain").version).toBe(3);
    reopened.close();
  });
});
