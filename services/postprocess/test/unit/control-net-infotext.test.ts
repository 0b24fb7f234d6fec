import { describe, expect, it } from "vitest";
import { controlNetUnitsFromInfotext } from "../../src/infotext/control-net-units.js";
import { formatInfotext } from "../../src/infotext/format-infotext.js";
import { parametersFromInfotext } from "../../src/infotext/parameters-from-infotext.js";
import { parseInfotext } from "../../src/infotext/parse-infotext.js";

// As the ControlNet extension (v1.1.4xx) writes its units, one canny and one without a preprocessor.
const CANNY =
  "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0, Resize Mode: Crop and Resize, Low Vram: False, Processor Res: 512, Threshold A: 100, Threshold B: 200, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced";
const NONE =
  "Module: none, Model: tiny-edges [e3b0c442], Weight: 0.45, Resize Mode: Resize and Fill, Low Vram: False, Guidance Start: 0.1, Guidance End: 0.75, Pixel Perfect: True, Control Mode: Balanced, Hr Option: Both";

describe("ControlNet units in an infotext", () => {
  it("are written quoted, as extra fields, and read back typed in unit order", () => {
    const text = formatInfotext({
      prompt: "a fox",
      steps: 20,
      seed: 1,
      extra: { "ControlNet 0": CANNY, "ControlNet 1": NONE },
    });
    expect(text).toBe(`a fox\nSteps: 20, Seed: 1, ControlNet 0: "${CANNY}", ControlNet 1: "${NONE}"`);
    const params = parametersFromInfotext(parseInfotext(text));
    expect(params.extra).toEqual({ "ControlNet 0": CANNY, "ControlNet 1": NONE });
    expect(controlNetUnitsFromInfotext({ "ControlNet 1": NONE, "ControlNet 0": CANNY })).toEqual([
      {
        index: 0,
        module: "canny",
        model: "control_v11p_sd15_canny",
        modelHash: "d14c016b",
        weight: 1,
        resizeMode: "crop-and-resize",
        processorRes: 512,
        thresholdA: 100,
        thresholdB: 200,
        guidanceStart: 0,
        guidanceEnd: 1,
        pixelPerfect: false,
        controlMode: "Balanced",
      },
      {
        index: 1,
        module: "none",
        model: "tiny-edges",
        modelHash: "e3b0c442",
        weight: 0.45,
        resizeMode: "resize-and-fill",
        processorRes: undefined,
        thresholdA: undefined,
        thresholdB: undefined,
        guidanceStart: 0.1,
        guidanceEnd: 0.75,
        pixelPerfect: true,
        controlMode: "Balanced",
      },
    ]);
  });

  it("leave out the extension's legacy format and other keys, as the extension does", () => {
    expect(
      controlNetUnitsFromInfotext({
        ControlNet:
          "preprocessor: canny, model: control_sd15_canny [fef5e48e], weight: 1, starting/ending: (0, 1)",
        "ControlNet 0": "Module: canny, starting/ending: (0, 1)",
        "Lora hashes": "a: 1",
      }),
    ).toEqual([]);
  });
});
