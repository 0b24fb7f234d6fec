import { readFileSync, writeFileSync } from "node:fs";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { DomainError } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RawImage } from "../../src/image/raw-image.js";
import { createImagePreprocessor } from "../../src/safety/image-preprocessor.js";
import { loadSafetyClassifier, type SafetyClassifier } from "../../src/safety/safety-classifier.js";
import { parseSafetyPolicyTable } from "../../src/safety/safety-policy.js";
import { SafetyStage } from "../../src/safety/safety-stage.js";
import { type ModelDirs, writeModelDirs } from "../support/model-dirs.js";
import { gradientImage } from "../support/test-images.js";

const UNSAFE = ["nsfw", "porn"];
let dirs: ModelDirs;
let classifier: SafetyClassifier;

beforeAll(async () => {
  dirs = await writeModelDirs();
  classifier = await loadSafetyClassifier(dirs.safetyDir, { unsafeLabels: UNSAFE });
});
afterAll(async () => {
  await classifier?.release();
  dirs?.remove();
});

function solid(width: number, height: number, rgb: [number, number, number]): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { data, width, height, channels: 3 };
}

describe("image preprocessing from preprocessor_config.json", () => {
  it("resizes to a fixed size, rescales and normalizes as a ViT processor does", async () => {
    const config = JSON.parse(readFileSync(join(dirs.safetyDir, "preprocessor_config.json"), "utf8"));
    const pre = createImagePreprocessor("tiny", config);
    expect(pre.size).toEqual({ height: 224, width: 224 });
    const { data, dims } = await pre.toPixelValues(solid(100, 50, [200, 100, 50]));
    expect(dims).toEqual([1, 3, 224, 224]);
    const plane = 224 * 224;
    for (const [c, v] of [200, 100, 50].entries()) {
      expect(data[c * plane + 1234]).toBeCloseTo((v / 255 - 0.5) / 0.5, 5);
    }
  });

  it("resizes the shortest edge and center-crops as a CLIP processor does", async () => {
    // Rows 0-31 red, 32-95 blue, 96-127 green: the crop of the middle keeps the blue band.
    const image = solid(64, 128, [0, 0, 255]);
    for (let y = 0; y < 128; y++) {
      for (let x = 0; x < 64; x++) {
        if (y < 32) image.data.set([255, 0, 0], (y * 64 + x) * 3);
        if (y >= 96) image.data.set([0, 255, 0], (y * 64 + x) * 3);
      }
    }
    const mean = [0.48145466, 0.4578275, 0.40821073];
    const std = [0.26862954, 0.26130258, 0.27577711];
    const pre = createImagePreprocessor("clip", {
      do_resize: true,
      size: { shortest_edge: 16 },
      resample: 3,
      do_center_crop: true,
      crop_size: { height: 16, width: 16 },
      do_rescale: true,
      rescale_factor: 1 / 255,
      do_normalize: true,
      image_mean: mean,
      image_std: std,
    });
    expect(pre.size).toEqual({ height: 16, width: 16 });
    const { data, dims } = await pre.toPixelValues(image);
    expect(dims).toEqual([1, 3, 16, 16]);
    const at = (c: number, y: number, x: number) =>
      (data[c * 256 + y * 16 + x] as number) * (std[c] as number) + (mean[c] as number);
    // Resized to 16x32, rows 8-23 kept: pure blue away from the band edges.
    expect([at(0, 8, 8), at(1, 8, 8), at(2, 8, 8)].map((v) => Math.max(0, Math.round(v * 255)))).toEqual([
      0, 0, 255,
    ]);
  });

  it("names the file and key a config gets wrong", () => {
    expect(() => createImagePreprocessor("m", { size: { height: 224, width: 224 } })).toThrow(
      'model "m": preprocessor_config.json image_mean must be three numbers (RGB), got undefined',
    );
    expect(() => createImagePreprocessor("m", { size: "big", do_normalize: false })).toThrow(
      'model "m": preprocessor_config.json size must be a number or {height, width}, got "big"',
    );
  });
});

describe("the safety classifier, loaded by contract", () => {
  it("scores images as a probability, the same image the same way", async () => {
    expect(classifier.labels).toEqual(["normal", "nsfw"]);
    expect(classifier.unsafeLabels).toEqual(["nsfw"]);
    const a = await classifier.score(gradientImage(96, 64));
    const b = await classifier.score(solid(96, 64, [250, 20, 20]));
    for (const s of [a, b]) expect(s > 0 && s < 1).toBe(true);
    expect(await classifier.score(gradientImage(96, 64))).toBe(a);
    expect(b).not.toBe(a);
  });

  it("refuses a directory that breaks the contract, naming model, file and tensor", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dmesh-safety-"));
    const copy = join(dir, "broken");
    const edit = (file: string, change: (json: Record<string, unknown>) => void) => {
      const json = JSON.parse(readFileSync(join(copy, file), "utf8"));
      change(json);
      writeFileSync(join(copy, file), JSON.stringify(json));
    };
    try {
      await cp(dirs.safetyDir, copy, { recursive: true });
      edit("preprocessor_config.json", (j) => {
        j.size = { height: 256, width: 256 };
      });
      await expect(loadSafetyClassifier(copy, { unsafeLabels: UNSAFE })).rejects.toThrow(
        'model "broken": input "pixel_values" is float32 [batch_size, 3, 224, 224]: does not match preprocessor_config.json, which makes 256x256',
      );
      await cp(dirs.safetyDir, copy, { recursive: true });
      edit("config.json", (j) => {
        j.id2label = { "0": "cat", "1": "dog" };
      });
      await expect(loadSafetyClassifier(copy, { unsafeLabels: UNSAFE })).rejects.toThrow(
        'model "broken": config.json id2label (cat, dog) must hold both safe labels and unsafe ones (nsfw, porn)',
      );
      await rm(join(copy, "config.json"));
      await expect(loadSafetyClassifier(copy, { unsafeLabels: UNSAFE })).rejects.toThrow(
        /^model "broken": config.json cannot be read/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("SafetyStage", () => {
  const policies = parseSafetyPolicyTable("pass,strict=reject,soft=blur");

  it("applies pass, flag, blur and reject to a flagged image and records the verdict", async () => {
    const stage = new SafetyStage({ classifier, policies, threshold: 0 });
    const image = gradientImage(64, 48);
    const passed = await stage.apply(image, "pass");
    expect(passed.verdict).toMatchObject({
      action: "passed",
      flagged: true,
      classifier: "safety",
      threshold: 0,
    });
    expect(passed.image).toBe(image);
    const flagged = await stage.apply(image, "flag");
    expect(flagged.verdict.action).toBe("flagged");
    expect(SafetyStage.infotextFields(flagged.verdict)).toEqual({
      Safety: `flagged ${flagged.verdict.score.toFixed(2)}`,
      "Safety model": "safety",
    });
    const blurred = await stage.apply(image, "blur");
    expect(blurred.verdict.action).toBe("blurred");
    // The hard edge in the middle of the gradient is smeared across many pixels.
    const row = 10 * 64 * 3;
    const step = (d: Uint8Array) =>
      Math.abs((d[row + 33 * 3 + 2] as number) - (d[row + 31 * 3 + 2] as number));
    expect(step(image.data)).toBeGreaterThan(100);
    expect(step(blurred.image.data)).toBeLessThan(20);
    const rejected = await stage.apply(image, "reject");
    expect(rejected.verdict.action).toBe("rejected");
    const error = (() => {
      try {
        SafetyStage.throwIfRejected(rejected.verdict, "image");
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(DomainError);
    expect([(error as DomainError).code, (error as DomainError).field]).toEqual([
      Code.FailedPrecondition,
      "image",
    ]);
    expect((error as Error).message).toMatch(
      /^image: rejected by the safety policy: classifier "safety" scored it 0\.\d{3} unsafe/,
    );
  });

  it("passes an image under the threshold whatever the policy, and resolves policies by request, tenant, default", async () => {
    const stage = new SafetyStage({ classifier, policies, threshold: 1 });
    const { verdict } = await stage.apply(gradientImage(32, 32), "reject");
    expect([verdict.flagged, verdict.action]).toEqual([false, "passed"]);
    expect(stage.resolvePolicy("flag", "strict", "safety")).toBe("flag");
    expect(stage.resolvePolicy(undefined, "strict", "safety")).toBe("reject");
    expect(stage.resolvePolicy(undefined, "soft", "safety")).toBe("blur");
    expect(stage.resolvePolicy(undefined, "other", "safety")).toBe("pass");
  });

  it("without a classifier, passes and records nothing, and refuses the other policies by field", async () => {
    const stage = new SafetyStage({
      classifier: undefined,
      policies: parseSafetyPolicyTable("pass"),
      threshold: 0.5,
    });
    const { verdict } = await stage.apply(gradientImage(8, 8), stage.resolvePolicy(undefined, "", "safety"));
    expect(verdict).toEqual({
      policy: "pass",
      score: 0,
      flagged: false,
      action: "passed",
      classifier: "none",
      threshold: 0.5,
    });
    expect(SafetyStage.infotextFields(verdict)).toEqual({});
    expect(() => stage.resolvePolicy("blur", "", "safety")).toThrow(
      "safety: no safety classifier is configured on this postprocess service",
    );
  });

  it("reads SAFETY_POLICY, and says what is wrong with a bad one", () => {
    const table = parseSafetyPolicyTable("flag, acme=reject ,studio=pass");
    expect([table.fallback, [...table.tenants]]).toEqual([
      "flag",
      [
        ["acme", "reject"],
        ["studio", "pass"],
      ],
    ]);
    expect(() => parseSafetyPolicyTable("hide")).toThrow('"hide" is not a policy (pass, flag, blur, reject)');
    expect(() => parseSafetyPolicyTable("pass,acme")).toThrow('"acme" is not tenant=policy');
    expect(() => parseSafetyPolicyTable("pass,a=flag,a=blur")).toThrow('tenant "a" is given twice');
  });
});
