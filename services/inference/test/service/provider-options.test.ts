import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OnnxSession } from "@dmesh/onnx";
import { ConfigError, loadConfig } from "@dmesh/runtime";
import { writeTinyUpscaler } from "@dmesh/tiny-model";
import { describe, expect, it } from "vitest";
import { inferenceSettings } from "../../src/config.js";
import { providerSetup } from "../../src/provider-options.js";

const configOf = (env: Record<string, string>) => loadConfig(inferenceSettings, env, []);

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("ORT_* provider options from the environment", () => {
  it("a bad value is a configuration problem naming its variable, every one at once", () => {
    const problems = problemsOf(() =>
      configOf({
        ORT_DEVICE_ID: "first",
        ORT_CUDA_ARENA_EXTEND_STRATEGY: "kDouble",
        ORT_CUDA_CUDNN_CONV_ALGO_SEARCH: "FAST",
        ORT_CUDA_MEM_LIMIT: "-1",
        ORT_TRT_ENGINE_CACHE_DIR: "cache/trt",
        ORT_TRT_FP16: "maybe",
      }),
    );
    expect(problems.map((p) => p.split(":")[0])).toEqual([
      "ORT_DEVICE_ID",
      "ORT_CUDA_ARENA_EXTEND_STRATEGY",
      "ORT_CUDA_MEM_LIMIT",
      "ORT_CUDA_CUDNN_CONV_ALGO_SEARCH",
      "ORT_TRT_ENGINE_CACHE_DIR",
      "ORT_TRT_FP16",
    ]);
    expect(problems[3]).toBe(
      'ORT_CUDA_CUDNN_CONV_ALGO_SEARCH: must be one of , EXHAUSTIVE, HEURISTIC, DEFAULT (got "FAST")',
    );
    expect(problems[4]).toContain("must be an absolute path");
  });

  it("the device id: ORT_DEVICE_ID, else the device service's recommended cuda:N, else 0; none without a device provider", () => {
    expect(providerSetup(["cuda", "cpu"], configOf({}), "cuda:2")).toEqual({
      deviceId: 2,
      applied: { cuda: { deviceId: 2 } },
    });
    expect(providerSetup(["tensorrt", "cuda", "cpu"], configOf({ ORT_DEVICE_ID: "1" }), "cuda:2")).toEqual({
      deviceId: 1,
      applied: { tensorrt: { deviceId: 1 }, cuda: { deviceId: 1 } },
    });
    expect(providerSetup(["dml", "cpu"], configOf({}), "dml:0").deviceId).toBe(0);
    expect(providerSetup(["cuda", "cpu"], configOf({}), undefined).deviceId).toBe(0);
    expect(providerSetup(["cpu"], configOf({ ORT_DEVICE_ID: "3" }), "cpu")).toEqual({
      deviceId: undefined,
      applied: {},
    });
  });

  it("an option the binding cannot carry to a provider of the chain stops the start, naming each variable", () => {
    const config = configOf({
      ORT_CUDA_CUDNN_CONV_ALGO_SEARCH: "HEURISTIC",
      ORT_CUDA_ARENA_EXTEND_STRATEGY: "kSameAsRequested",
      ORT_TRT_FP16: "true",
      ORT_TRT_ENGINE_CACHE_DIR: "/var/cache/trt",
    });
    const problems = problemsOf(() => providerSetup(["tensorrt", "cuda", "cpu"], config));
    expect(problems.map((p) => p.split(":")[0])).toEqual([
      "ORT_CUDA_ARENA_EXTEND_STRATEGY",
      "ORT_CUDA_CUDNN_CONV_ALGO_SEARCH",
      "ORT_TRT_ENGINE_CACHE_DIR",
      "ORT_TRT_FP16",
    ]);
    expect(problems[3]).toBe(
      "ORT_TRT_FP16: cannot take effect: onnxruntime-node's binding passes only deviceId to the tensorrt provider (unset it; see deploy/README.md)",
    );
    // Only the cuda ones matter to a cuda chain; none to a CPU chain.
    expect(problemsOf(() => providerSetup(["cuda", "cpu"], config))).toHaveLength(2);
    expect(problemsOf(() => providerSetup(["cpu"], config))).toEqual([]);
  });

  it("a session takes the device id in the provider's option object; a provider this build lacks falls back to CPU", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dmesh-provider-options-"));
    try {
      await writeTinyUpscaler(dir);
      const session = await OnnxSession.open("upscaler", "model", join(dir, "model.onnx"), {
        executionProviders: ["cuda"],
        intraOpThreads: 1,
        graphOptimization: "basic",
        memoryArena: false,
        deviceId: 0,
      });
      expect(session.providers).toEqual(["cpu"]);
      expect(session.fallbacks.map((f) => f.provider)).toEqual(["cuda"]);
      await session.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
