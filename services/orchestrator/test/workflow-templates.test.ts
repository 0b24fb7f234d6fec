import { describe, expect, it } from "vitest";
import { BUILTIN_WORKFLOWS, type StepTemplate, type WorkflowTemplate } from "../src/workflows/templates.js";
import { validateWorkflow } from "../src/workflows/validate-workflow.js";
import { WorkflowCatalog } from "../src/workflows/workflow-catalog.js";

const spec = { name: "spec", required: true, description: "" };

function template(steps: StepTemplate[], inputs = [spec]): WorkflowTemplate {
  return { id: "t", name: "t", description: "", inputs, requiredModels: [], steps };
}

function step(id: string, dependsOn: string[], inputs: Record<string, string> = {}): StepTemplate {
  return { id, domain: "postprocess", operation: "enhance", dependsOn, inputs };
}

describe("workflow templates", () => {
  it("has every built-in workflow the issue names, each valid, ordered so dependencies come first", () => {
    const catalog = new WorkflowCatalog(BUILTIN_WORKFLOWS);
    expect(catalog.list().map((e) => e.template.id)).toEqual([
      "txt2img",
      "img2img",
      "inpaint",
      "txt2img-hires",
      "sdxl-refiner",
      "upscale-enhance",
      "style-transfer",
    ]);
    for (const { template, order } of catalog.list()) {
      expect(order.toSorted()).toEqual(template.steps.map((s) => s.id).toSorted());
      for (const s of template.steps) {
        for (const dep of s.dependsOn)
          expect(order.indexOf(dep), `${template.id}: ${dep} before ${s.id}`).toBeLessThan(
            order.indexOf(s.id),
          );
      }
    }
    expect(catalog.get("txt2img-hires").order).toEqual(["generate", "upscale", "hires", "encode"]);
  });

  it("names an unknown workflow and the known ones", () => {
    expect(() => new WorkflowCatalog(BUILTIN_WORKFLOWS).get("nope")).toThrow(
      /workflow_id: no workflow "nope" \(known: txt2img, img2img/,
    );
  });

  it("orders independent branches and joins", () => {
    const order = validateWorkflow(
      template([
        step("join", ["left", "right"], { a: "left.images", b: "right.images" }),
        step("left", ["root"], { image: "root.images" }),
        step("right", ["root"], { image: "root.images" }),
        step("root", [], { spec: "input.spec" }),
      ]),
    );
    expect(order[0]).toBe("root");
    expect(order.at(-1)).toBe("join");
  });

  it("rejects a malformed template with every reason at once", () => {
    const bad = template([
      step("a", []),
      step("a", []),
      step("b", ["ghost"]),
      step("c", [], { image: "input.photo" }),
      step("d", [], { image: "a.images" }),
    ]);
    let message = "";
    try {
      validateWorkflow(bad);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('workflow "t" is malformed');
    expect(message).toContain('step "a" is defined twice');
    expect(message).toContain('step "b" depends on unknown step "ghost"');
    expect(message).toContain('step "c" input "image" reads undeclared input "input.photo"');
    expect(message).toContain('step "d" input "image" reads "a.images" without depending on "a"');
  });

  it("rejects a cycle, naming the steps on it", () => {
    const cyclic = template([
      step("start", [], { spec: "input.spec" }),
      step("x", ["start", "z"], { image: "z.images" }),
      step("y", ["x"], { image: "x.images" }),
      step("z", ["y"], { image: "y.images" }),
    ]);
    expect(() => validateWorkflow(cyclic)).toThrow('workflow "t" has a cycle through steps x, y, z');
    expect(() => new WorkflowCatalog([cyclic])).toThrow(/cycle/);
    expect(() => validateWorkflow(template([step("self", ["self"], { image: "self.images" })]))).toThrow(
      /cycle through steps self/,
    );
  });
});
