import { InvalidArgumentError } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { createHostDetector } from "../../src/detect/detect-host.js";
import { InsufficientMemoryError } from "../../src/errors/insufficient-memory-error.js";
import type { ModelMemoryEstimate } from "../../src/recommend/model-memory-estimate.js";
import { recommendExecution } from "../../src/recommend/recommend-execution.js";
import { GIB, MIB } from "../../src/units/bytes.js";
import { gpuHost } from "./support/hosts.js";

/** An SDXL-sized UNet in fp32: ~10 GiB of weights, ~3 GiB of activations per 1024x1024 image. */
const sdxl: ModelMemoryEstimate = {
  weightsBytes: 10 * GIB,
  activationBytesPerImage: 3 * GIB,
  precision: "float32",
};

describe("recommendExecution on a 4x A100 node", () => {
  const host = gpuHost("nvidia-smi-4x-a100.csv");

  it("picks the GPU with the most free memory, fp16, the full provider chain and the batch that fits", () => {
    const rec = recommendExecution({ host, estimate: sdxl, maxBatch: 64 });
    // 81050 MiB free x 0.9 headroom = 72945 MiB; fp16 weights 5 GiB; (72945 - 5120) / 1536 = 44.2
    expect(rec).toMatchObject({
      deviceId: "cuda:1",
      deviceKind: "cuda",
      providers: ["tensorrt", "cuda", "cpu"],
      precision: "float16",
      maxBatch: 44,
      intraOpThreads: 4,
      interOpThreads: 1,
      availableBytes: 72945 * MIB,
    });
    expect(rec.reasons).toContain(
      "cuda:0: 16.5 GiB usable, 6.5 GiB needed for one image at float16 → batch 7",
    );
    expect(recommendExecution({ host, estimate: sdxl }).maxBatch).toBe(8); // default cap
  });

  it("accounts for memory other workers have leased", () => {
    const reservedBytes = new Map([
      ["cuda:1", 70 * GIB],
      ["cuda:3", 70 * GIB],
    ]);
    expect(recommendExecution({ host, estimate: sdxl, reservedBytes }).deviceId).toBe("cuda:2");
  });

  it("counts only activations when the weights are already loaded", () => {
    const rec = recommendExecution({ host, estimate: sdxl, deviceId: "cuda:0", maxBatch: 64 });
    const loaded = recommendExecution({
      host,
      estimate: sdxl,
      deviceId: "cuda:0",
      maxBatch: 64,
      weightsLoaded: true,
    });
    expect(rec.maxBatch).toBe(7);
    expect(loaded.maxBatch).toBe(10);
  });

  it("drops TensorRT from the chain where it is not usable", () => {
    const rec = recommendExecution({
      host: gpuHost("nvidia-smi-h100.csv", { tensorrt: false }),
      estimate: sdxl,
    });
    expect(rec.providers).toEqual(["cuda", "cpu"]);
  });

  it("falls back to the CPU in fp32 when no GPU holds the model, saying why", () => {
    const huge: ModelMemoryEstimate = {
      weightsBytes: 200 * GIB,
      activationBytesPerImage: 4 * GIB,
      precision: "float32",
    };
    const rec = recommendExecution({ host, estimate: huge });
    expect(rec).toMatchObject({
      deviceId: "cpu",
      providers: ["cpu"],
      precision: "float32",
      intraOpThreads: 16,
    });
    expect(rec.reasons.filter((r) => r.endsWith("does not fit"))).toHaveLength(4);
  });

  it("says how much is missing when nothing fits", () => {
    const error = (() => {
      try {
        return recommendExecution({ host, estimate: sdxl, deviceId: "cuda:0", headroomFraction: 0.8 });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InsufficientMemoryError);
    expect((error as Error).message).toBe("cuda:0: 6.5 GiB needed for one image but only 3.7 GiB free");
  });

  it("rejects unknown devices and bad estimates, naming the field", () => {
    expect(() => recommendExecution({ host, estimate: sdxl, deviceId: "cuda:9" })).toThrow(
      expect.objectContaining({
        field: "deviceId",
        message: expect.stringContaining("have cpu, cuda:0, cuda:1, cuda:2, cuda:3"),
      }),
    );
    expect(() => recommendExecution({ host, estimate: { ...sdxl, activationBytesPerImage: 0 } })).toThrow(
      InvalidArgumentError,
    );
    expect(() => recommendExecution({ host, estimate: { ...sdxl, precision: "int8" as "float16" } })).toThrow(
      expect.objectContaining({ field: "estimate.precision" }),
    );
    expect(() => recommendExecution({ host, estimate: sdxl, headroomFraction: 1 })).toThrow(
      expect.objectContaining({ field: "headroomFraction" }),
    );
  });
});

describe("recommendExecution on this host", () => {
  it("runs a small model on what detection found, with cpu at the end of the chain", async () => {
    const host = await createHostDetector().detect();
    const small: ModelMemoryEstimate = {
      weightsBytes: 8 * MIB,
      activationBytesPerImage: 4 * MIB,
      precision: "float32",
    };
    const rec = recommendExecution({ host, estimate: small });
    expect(rec.providers.at(-1)).toBe("cpu");
    expect(rec.maxBatch).toBeGreaterThanOrEqual(1);
    if (rec.deviceKind === "cpu") {
      expect(rec).toMatchObject({
        precision: "float32",
        providers: ["cpu"],
        intraOpThreads: host.cpu.effectiveCores,
      });
    }
  });
});
