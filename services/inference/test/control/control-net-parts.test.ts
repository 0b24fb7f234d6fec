import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelContractError } from "@dmesh/onnx";
import { describe, expect, it } from "vitest";
import { a1111ModelHash } from "../../src/adapters/adapter-hash.js";
import { controlNetInfotext, pythonFloat } from "../../src/control/control-net-infotext.js";
import { residualNames, sideAtLevel } from "../../src/control/residual-layout.js";

describe("residual names", () => {
  it("reads both namings of split exports, in index order, and none at all as no residuals", () => {
    expect(
      residualNames(
        [
          "sample",
          "down_block_1_additional_residual",
          "mid_block_additional_residual",
          "down_block_0_additional_residual",
        ],
        "m",
        "unet",
      ),
    ).toEqual({
      down: ["down_block_0_additional_residual", "down_block_1_additional_residual"],
      mid: "mid_block_additional_residual",
    });
    expect(
      residualNames(
        [
          "down_block_additional_residual.1",
          "down_block_additional_residual.0",
          "mid_block_additional_residual",
        ],
        "m",
        "controlnet",
      ),
    ).toEqual({
      down: ["down_block_additional_residual.0", "down_block_additional_residual.1"],
      mid: "mid_block_additional_residual",
    });
    expect(residualNames(["sample", "timestep", "out_sample"], "m", "unet")).toBeUndefined();
  });

  it.each([
    [
      [
        "down_block_0_additional_residual",
        "down_block_2_additional_residual",
        "mid_block_additional_residual",
      ],
      /skip index 1/,
    ],
    [["down_block_0_additional_residual"], /no mid_block_additional_residual/],
    [["mid_block_additional_residual"], /0 down-block residual/],
    [
      [
        "down_block_0_additional_residual",
        "down_block_additional_residual.0",
        "mid_block_additional_residual",
      ],
      /has both down_block_0_additional_residual and down_block_additional_residual.0/,
    ],
  ])("refuses an incomplete or doubled set, naming the model: %j", (names, message) => {
    let error: unknown;
    try {
      residualNames(names, "tiny", "unet");
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ModelContractError);
    expect((error as Error).message).toMatch(/^model "tiny": unet/);
    expect((error as Error).message).toMatch(message);
  });

  it("sizes each level as diffusers' stride-2 convolutions do (odd sides round up)", () => {
    expect([0, 1, 2, 3].map((level) => sideAtLevel(13, level))).toEqual([13, 7, 4, 2]);
    expect(sideAtLevel(128, 2)).toBe(32);
  });
});

describe("A1111's ControlNet infotext", () => {
  it("prints proto floats as the float a user typed, whole ones with .0", () => {
    expect([0.3, 1, 0, 0.75, 1.25, 2].map((v) => pythonFloat(Math.fround(v)))).toEqual([
      "0.3",
      "1.0",
      "0.0",
      "0.75",
      "1.25",
      "2.0",
    ]);
  });

  it("writes the extension's fields in its order, leaving out a preprocessor's unused sliders", () => {
    expect(
      controlNetInfotext([
        {
          module: "none",
          model: "depth",
          hash: "0123abcd",
          weight: Math.fround(0.55),
          resizeMode: "just-resize",
          processorRes: undefined,
          thresholdA: undefined,
          thresholdB: undefined,
          guidanceStart: Math.fround(0.1),
          guidanceEnd: 1,
          pixelPerfect: false,
        },
      ]),
    ).toEqual([
      {
        key: "ControlNet 0",
        value:
          "Module: none, Model: depth [0123abcd], Weight: 0.55, Resize Mode: Just Resize, Low Vram: False, Guidance Start: 0.1, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced",
      },
    ]);
  });

  it("hashes a model as A1111's model_hash: SHA-256 of the 64 KiB at 1 MiB, 8 hex digits", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dmesh-cn-hash-"));
    try {
      const bytes = Uint8Array.from({ length: 0x100000 + 0x18000 }, (_, i) => (i * 7919) % 251);
      await writeFile(join(dir, "big.onnx"), bytes);
      await writeFile(join(dir, "small.onnx"), bytes.subarray(0, 1000));
      const expected = createHash("sha256")
        .update(bytes.subarray(0x100000, 0x110000))
        .digest("hex")
        .slice(0, 8);
      expect(await a1111ModelHash(join(dir, "big.onnx"))).toBe(expected);
      // Nothing at 1 MiB: the hash of no bytes, as A1111 shows for any small file.
      expect(await a1111ModelHash(join(dir, "small.onnx"))).toBe("e3b0c442");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
