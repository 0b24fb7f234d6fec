import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  assessExecutionProviders,
  gatherProviderFacts,
  type ProviderFacts,
} from "../../src/detect/execution-providers.js";
import { listOnnxBackends, providerLibraryPath } from "../../src/detect/onnx-backends.js";
import {
  findSharedLibrary,
  missingDependencies,
  parseLdconfigCache,
  parseLddMissing,
} from "../../src/detect/shared-libraries.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");
/** What onnxruntime-node 1.23 lists on linux/x64 (as on this host). */
const linuxBackends = [
  { name: "cpu", bundled: true },
  { name: "webgpu", bundled: true },
  { name: "cuda", bundled: false },
  { name: "tensorrt", bundled: false },
];
const cudaPath = "/x/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so";
const trtPath = "/x/bin/napi-v6/linux/x64/libonnxruntime_providers_tensorrt.so";

function usable(facts: ProviderFacts): Record<string, boolean> {
  return Object.fromEntries(assessExecutionProviders(facts).map((s) => [s.name, s.usable]));
}

describe("loader probes", () => {
  it("parses ldd's missing libraries and the ld.so cache", () => {
    expect(parseLddMissing(fixture("ldd-cuda-provider-missing.txt"))).toEqual([
      "libcublasLt.so.12",
      "libcublas.so.12",
      "libcufft.so.11",
      "libcudart.so.12",
      "libcudnn.so.9",
    ]);
    const cache = parseLdconfigCache(fixture("ldconfig-p.txt"), true);
    expect(cache.get("libz.so.1")).toBe("/lib/x86_64-linux-gnu/libz.so.1"); // not the i386 one listed first
    expect(cache.get("libvulkan.so.1")).toBe("/usr/lib/x86_64-linux-gnu/libvulkan.so.1");
    expect(parseLdconfigCache(fixture("ldconfig-p.txt"), false).get("libz.so.1")).toBe(
      "/usr/lib/i386-linux-gnu/libz.so.1",
    );
  });

  it.runIf(process.platform === "linux")("resolves real libraries on this host", async () => {
    expect(await findSharedLibrary("libc.so.6")).toMatch(/libc\.so\.6$/);
    expect(await findSharedLibrary("libdmesh-not-a-library.so.9")).toBeUndefined();
    // onnxruntime-node's own binding links only what is here.
    const binding = providerLibraryPath("cuda")?.replace(
      "libonnxruntime_providers_cuda.so",
      "onnxruntime_binding.node",
    );
    expect(await missingDependencies(binding as string)).toEqual([]);
  });
});

describe("assessExecutionProviders", () => {
  const base: ProviderFacts = {
    platform: "linux",
    backends: linuxBackends,
    hasNvidiaGpu: false,
    hasWebGpuAdapter: false,
    providerLibraries: {
      cuda: { path: cudaPath, present: false },
      tensorrt: { path: trtPath, present: false },
    },
  };

  it("CPU-only Linux: only cpu", () => {
    const statuses = assessExecutionProviders(base);
    expect(usable(base)).toEqual({ cpu: true, webgpu: false, cuda: false, tensorrt: false });
    expect(statuses.find((s) => s.name === "cuda")?.reason).toBe("no NVIDIA GPU detected");
  });

  it("NVIDIA GPU without the provider library says how to install it", () => {
    const facts = { ...base, hasNvidiaGpu: true };
    const cuda = assessExecutionProviders(facts).find((s) => s.name === "cuda");
    expect(cuda).toMatchObject({ usable: false, bundled: false });
    expect(cuda?.reason).toMatch(
      /libonnxruntime_providers_cuda\.so is not installed .*ONNXRUNTIME_NODE_INSTALL=cuda12/,
    );
  });

  it("NVIDIA GPU with the library but missing CUDA libraries names them", () => {
    const missing = parseLddMissing(fixture("ldd-cuda-provider-missing.txt"));
    const facts: ProviderFacts = {
      ...base,
      hasNvidiaGpu: true,
      providerLibraries: { cuda: { path: cudaPath, present: true, missing } },
    };
    const cuda = assessExecutionProviders(facts).find((s) => s.name === "cuda");
    expect(cuda?.reason).toBe(
      "the loader cannot find libcublasLt.so.12, libcublas.so.12, libcufft.so.11, libcudart.so.12, libcudnn.so.9",
    );
  });

  it("a full GPU install: tensorrt, cuda and webgpu", () => {
    const facts: ProviderFacts = {
      ...base,
      hasNvidiaGpu: true,
      hasWebGpuAdapter: true,
      providerLibraries: {
        cuda: { path: cudaPath, present: true, missing: [] },
        tensorrt: { path: trtPath, present: true, missing: [] },
      },
    };
    expect(usable(facts)).toEqual({ cpu: true, webgpu: true, cuda: true, tensorrt: true });
  });

  it("TensorRT needs a usable CUDA provider", () => {
    const facts: ProviderFacts = {
      ...base,
      hasNvidiaGpu: true,
      providerLibraries: {
        cuda: { path: cudaPath, present: true, missing: ["libcudnn.so.9"] },
        tensorrt: { path: trtPath, present: true, missing: [] },
      },
    };
    expect(assessExecutionProviders(facts).find((s) => s.name === "tensorrt")?.reason).toMatch(
      /CUDA provider/,
    );
  });

  it("DirectML on Windows and Core ML on macOS come with the platform", () => {
    const windows = usable({
      ...base,
      platform: "win32",
      backends: [
        { name: "cpu", bundled: true },
        { name: "dml", bundled: true },
        { name: "webgpu", bundled: true },
      ],
      hasWebGpuAdapter: true,
    });
    expect(windows).toEqual({ cpu: true, dml: true, webgpu: true });
    const mac = usable({
      ...base,
      platform: "darwin",
      backends: [
        { name: "cpu", bundled: true },
        { name: "coreml", bundled: true },
      ],
      providerLibraries: {},
    });
    expect(mac).toEqual({ cpu: true, coreml: true });
  });
});

describe("on this host", () => {
  it("lists onnxruntime-node's backends and finds cpu usable", async () => {
    const backends = listOnnxBackends();
    expect(backends).toContainEqual({ name: "cpu", bundled: true });
    const statuses = assessExecutionProviders(
      await gatherProviderFacts({ backends, hasNvidiaGpu: false, hasRenderNode: false }),
    );
    expect(statuses.find((s) => s.name === "cpu")).toEqual({
      name: "cpu",
      bundled: true,
      usable: true,
      reason: "always available",
    });
    for (const status of statuses.filter((s) => s.name === "cuda" || s.name === "tensorrt")) {
      expect(status).toMatchObject({ usable: false, reason: "no NVIDIA GPU detected" });
    }
  });
});
