import { commonSettings, parse } from "@dmesh/runtime";

/** Every setting of the inference service; the README's table is `configTable(inferenceSettings)`. */
export const inferenceSettings = {
  ...commonSettings,
  port: { env: "PORT", description: "gRPC port", default: 50052, parse: parse.int(0, 65535) },
  modelsDir: {
    env: "MODELS_DIR",
    description: "directory of model suites (one diffusers/optimum ONNX export per subdirectory)",
    default: ".dmesh/models",
    parse: parse.string,
  },
  lorasDir: {
    env: "LORAS_DIR",
    description:
      "LoRA files (`<name>.safetensors`), named in prompts as `<lora:name:weight>` (empty = MODELS_DIR/loras)",
    default: "",
    parse: parse.string,
  },
  embeddingsDir: {
    env: "EMBEDDINGS_DIR",
    description:
      "textual-inversion embeddings (`<name>.safetensors`), used where a prompt writes their name (empty = MODELS_DIR/embeddings)",
    default: "",
    parse: parse.string,
  },
  controlNetDir: {
    env: "CONTROLNET_DIR",
    description:
      "directory of ControlNets (`<name>/model.onnx`, split export); empty = MODELS_DIR/controlnet",
    default: "",
    parse: parse.string,
  },
  defaultModel: {
    env: "DEFAULT_MODEL",
    description: "model used when a request names none (empty = first found)",
    default: "",
    parse: parse.string,
  },
  preloadDefaultModel: {
    env: "PRELOAD_DEFAULT_MODEL",
    description: "load the default model at start; readiness waits for it",
    default: true,
    parse: parse.bool,
  },
  executionProviders: {
    env: "EXECUTION_PROVIDERS",
    description:
      "onnxruntime provider chain, most preferred first (cuda, tensorrt, dml, coreml, webgpu, cpu); empty = as the device service recommends, else cpu",
    default: [] as string[],
    parse: (raw: string) => {
      const list = raw
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      const known = ["cuda", "tensorrt", "dml", "coreml", "webgpu", "cpu"];
      for (const p of list)
        if (!known.includes(p)) throw new Error(`unknown provider "${p}"; known: ${known.join(", ")}`);
      return list;
    },
  },
  deviceUrl: {
    env: "DEVICE_URL",
    description:
      "device service (host:port) on this host: asked for the provider chain when EXECUTION_PROVIDERS is empty, and for the device's memory, which GetQueue reports",
    default: "",
    parse: (raw: string) => parse.addresses(raw)[0] ?? "",
  },
  intraOpThreads: {
    env: "INTRA_OP_THREADS",
    description: "onnxruntime intra-op threads (0 = one per core)",
    default: 0,
    parse: parse.int(0, 1024),
  },
  graphOptimization: {
    env: "GRAPH_OPTIMIZATION",
    description: "onnxruntime graph optimization level",
    default: "all" as const,
    parse: parse.oneOf("disabled", "basic", "extended", "all"),
  },
  memoryArena: {
    env: "MEMORY_ARENA",
    description: "onnxruntime CPU memory arena",
    default: true,
    parse: parse.bool,
  },
  maxLoadedModels: {
    env: "MAX_LOADED_MODELS",
    description: "model suites kept in memory; idle ones beyond this are unloaded, least recently used first",
    default: 2,
    parse: parse.int(1, 64),
  },
  maxUnetBatch: {
    env: "MAX_UNET_BATCH",
    description:
      "images denoised together in one UNet run (its batch is twice that with guidance): a request's own images, and those of concurrent requests in step with it; raise it where device memory allows",
    default: 1,
    parse: parse.int(1, 64),
  },
  maxConcurrent: {
    env: "MAX_CONCURRENT_GENERATIONS",
    description: "generations running at once in this process (with MAX_UNET_BATCH > 1 they share UNet runs)",
    default: 1,
    parse: parse.int(1, 64),
  },
  maxQueued: {
    env: "MAX_QUEUED_GENERATIONS",
    description: "generations waiting before RESOURCE_EXHAUSTED",
    default: 16,
    parse: parse.int(0, 10_000),
  },
};
