import { ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { describe, expect, it } from "vitest";
import { GENERATE_HELP } from "../src/commands/generate.js";
import { controlNetsFromFlags } from "../src/control-options.js";

const read = (file: string) => new TextEncoder().encode(`bytes of ${file}`);

describe("--control NAME:IMAGE[:SCALE[:START:END]]", () => {
  it("makes one unit per flag: name, image file, and the numbers at the end", () => {
    const units = controlNetsFromFlags(
      { control: ["edges:fox.png", "depth:maps/a:b.jpg:0.5", "pose:p.webp:1.2:0.1:0.8"] },
      read,
    );
    expect(units.map((u) => [u.model, u.conditioningScale, u.guidanceStart, u.guidanceEnd])).toEqual([
      ["edges", undefined, undefined, undefined],
      ["depth", 0.5, undefined, undefined],
      ["pose", 1.2, 0.1, 0.8],
    ]);
    // A colon in the path stays in the path.
    expect(units[1]?.image).toEqual({ encoding: ImageEncoding.JPEG, data: read("maps/a:b.jpg") });
    expect(units[2]?.image?.encoding).toBe(ImageEncoding.WEBP);
    expect(units.map((u) => u.preprocessor?.name)).toEqual(["none", "none", "none"]);
  });

  it("--control-preprocess applies to every unit, or one per --control; thresholds and resize mode too", () => {
    const all = controlNetsFromFlags(
      {
        control: ["a:x.png", "b:y.png"],
        "control-preprocess": ["canny"],
        "control-thresholds": "50:150",
        "control-resize": "fill",
      },
      read,
    );
    expect(all.map((u) => [u.preprocessor, u.resizeMode])).toEqual([
      [{ name: "canny", thresholdA: 50, thresholdB: 150 }, ControlResizeMode.RESIZE_AND_FILL],
      [{ name: "canny", thresholdA: 50, thresholdB: 150 }, ControlResizeMode.RESIZE_AND_FILL],
    ]);
    const each = controlNetsFromFlags(
      { control: ["a:x.png", "b:y.png"], "control-preprocess": ["none", "canny"] },
      read,
    );
    expect(each.map((u) => u.preprocessor?.name)).toEqual(["none", "canny"]);
  });

  it("refuses what it cannot read, saying what it expects", () => {
    expect(() => controlNetsFromFlags({ control: ["edges"] }, read)).toThrow(/NAME:IMAGE/);
    expect(() => controlNetsFromFlags({ control: [":x.png"] }, read)).toThrow(/NAME:IMAGE/);
    expect(() =>
      controlNetsFromFlags({ control: ["a:x", "b:y", "c:z"], "control-preprocess": ["canny", "none"] }, read),
    ).toThrow(/one per --control \(3\), got 2/);
    expect(() => controlNetsFromFlags({ control: ["a:x"], "control-thresholds": "5" }, read)).toThrow(
      /LOW:HIGH/,
    );
    expect(() => controlNetsFromFlags({ control: ["a:x"], "control-resize": "stretch" }, read)).toThrow(
      /just, crop or fill/,
    );
    expect(() => controlNetsFromFlags({ "control-preprocess": ["canny"] }, read)).toThrow(/need a --control/);
  });

  it("is in generate's help", () => {
    expect(GENERATE_HELP).toContain("--control NAME:IMAGE[:SCALE[:START:END]]");
  });
});
