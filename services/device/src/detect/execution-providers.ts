import { fileExists } from "./file-exists.js";
import type { OnnxBackend } from "./onnx-backends.js";
import { providerLibraryPath } from "./onnx-backends.js";
import { findSharedLibrary, missingDependencies } from "./shared-libraries.js";

export type ExecutionProviderName = "cpu" | "cuda" | "tensorrt" | "dml" | "coreml" | "webgpu";

/** Whether onnxruntime-node can use a provider on this host, and why (logged with every fallback). */
export interface ExecutionProviderStatus {
  readonly name: ExecutionProviderName;
  readonly bundled: boolean;
  readonly usable: boolean;
  readonly reason: string;
}

/** The separately installed library of a provider (cuda, tensorrt) as found on disk. */
export interface ProviderLibraryState {
  readonly path: string;
  readonly present: boolean;
  /** Sonames the loader cannot resolve; undefined when that could not be checked (no ldd). */
  readonly missing?: readonly string[];
}

/** Everything the assessment needs, gathered from the host by `gatherProviderFacts`. */
export interface ProviderFacts {
  readonly platform: NodeJS.Platform;
  readonly backends: readonly OnnxBackend[];
  readonly hasNvidiaGpu: boolean;
  /** A GPU WebGPU could drive: a Linux DRM render node with Vulkan's loader present; always on macOS/Windows. */
  readonly hasWebGpuAdapter: boolean;
  readonly providerLibraries: Readonly<Partial<Record<"cuda" | "tensorrt", ProviderLibraryState>>>;
}

const KNOWN: readonly ExecutionProviderName[] = ["cpu", "cuda", "tensorrt", "dml", "coreml", "webgpu"];

/** Decides, for every backend onnxruntime-node lists, whether it is usable here. */
export function assessExecutionProviders(facts: ProviderFacts): ExecutionProviderStatus[] {
  const statuses: ExecutionProviderStatus[] = [];
  for (const backend of facts.backends) {
    const name = KNOWN.find((known) => known === backend.name);
    if (name === undefined) continue;
    const [usable, reason] = assess(name, backend.bundled, facts);
    statuses.push({ name, bundled: backend.bundled, usable, reason });
  }
  return statuses;
}

function assess(name: ExecutionProviderName, bundled: boolean, facts: ProviderFacts): [boolean, string] {
  switch (name) {
    case "cpu":
      return [true, "always available"];
    case "dml":
      return [facts.platform === "win32", "DirectML ships with onnxruntime-node on Windows"];
    case "coreml":
      return [facts.platform === "darwin", "Core ML ships with onnxruntime-node on macOS"];
    case "webgpu":
      if (!bundled) return [false, "not built into this onnxruntime-node"];
      return facts.hasWebGpuAdapter
        ? [true, "built in; a GPU adapter is present"]
        : [false, "built in, but no GPU adapter (Linux needs a DRM render node and libvulkan.so.1)"];
    case "cuda":
    case "tensorrt": {
      if (!facts.hasNvidiaGpu) return [false, "no NVIDIA GPU detected"];
      const library = facts.providerLibraries[name];
      if (!library?.present) {
        return [
          false,
          `${library?.path ?? `the ${name} provider library`} is not installed (onnxruntime-node installs it with ONNXRUNTIME_NODE_INSTALL=cuda12)`,
        ];
      }
      if (library.missing && library.missing.length > 0) {
        return [false, `the loader cannot find ${library.missing.join(", ")}`];
      }
      // TensorRT hands the nodes it cannot compile to the CUDA provider.
      if (name === "tensorrt" && !assess("cuda", false, facts)[0]) {
        return [false, "TensorRT runs on top of the CUDA provider, which is not usable"];
      }
      return [
        true,
        library.missing
          ? "provider library and its dependencies resolve"
          : "provider library present; dependencies not checked (no ldd)",
      ];
    }
  }
}

/** Collects the facts on this host: provider libraries on disk and what the loader can resolve. */
export async function gatherProviderFacts(input: {
  readonly backends: readonly OnnxBackend[];
  readonly hasNvidiaGpu: boolean;
  readonly hasRenderNode: boolean;
  readonly platform?: NodeJS.Platform;
  readonly signal?: AbortSignal;
}): Promise<ProviderFacts> {
  const platform = input.platform ?? process.platform;
  const providerLibraries: Partial<Record<"cuda" | "tensorrt", ProviderLibraryState>> = {};
  for (const name of ["cuda", "tensorrt"] as const) {
    const path = providerLibraryPath(name, platform);
    if (path === undefined || !input.backends.some((b) => b.name === name)) continue;
    const present = await fileExists(path);
    const missing =
      present && platform === "linux" ? await missingDependencies(path, input.signal) : undefined;
    providerLibraries[name] = { path, present, ...(missing ? { missing } : {}) };
  }
  const hasWebGpuAdapter =
    platform === "linux"
      ? input.hasRenderNode &&
        (await findSharedLibrary("libvulkan.so.1", undefined, input.signal)) !== undefined
      : platform === "win32" || platform === "darwin";
  return {
    platform,
    backends: input.backends,
    hasNvidiaGpu: input.hasNvidiaGpu,
    hasWebGpuAdapter,
    providerLibraries,
  };
}
