import { commonSettings, parse } from "@dmesh/runtime";
import { providerOptionSettings } from "./provider-options.js";

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
      const list = parse.list((p) => p)(raw);
      const known = ["cuda", "tensorrt", "dml", "coreml", "webgpu", "cpu"];
      for (const p of list)
        if (!known.includes(p)) throw new Error(`unknown provider "${p}"; known: ${known.join(", ")}`);
      return list;
    },
  },
  ...providerOptionSettings,
  deviceUrl: {
    env: "DEVICE_URL",
    description:
      "device service (host:port) on this host: asked for the provider chain when EXECUTION_PROVIDERS is empty, and for the device's memory, which GetQueue reports",
    default: "",
    parse: (raw: string) => parse.addresses(raw)[0] ?? "",
  },
  intraOpThreads: {
    env: "INTRA_OP_THREADS",
    description:
      "onnxruntime intra-op threads per model run (0 = one per core): a process runs one model at a time, so one per core uses the machine without oversubscribing it",
    default: 0,
    parse: parse.int(0, 1024),
  },
  ortThreads: {
    env: "ORT_THREADS",
    description:
      "run each onnxruntime session on a worker thread of its own, so that health, cancel and progress are answered while a model computes (0 = on the event loop, which every model run blocks: only for comparing)",
    default: true,
    parse: parse.bool,
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
  vaeTileAbove: {
    env: "VAE_TILE_ABOVE",
    description:
      "images of more pixels than this decode and encode through the VAE in overlapping tiles (diffusers' enable_vae_tiling; also when the device service reports less free memory than an untiled decode needs); 0 = only then",
    default: 1536 * 1536,
    parse: parse.int(0, 1 << 30),
  },
  vaeTileSize: {
    env: "VAE_TILE_SIZE",
    description:
      "side of a VAE tile in pixels, a multiple of 32 (0 = the VAE config's sample_size: 512 for SD 1.x, 1024 for SDXL)",
    default: 0,
    parse: (raw: string) => {
      const n = parse.int(0, 8192)(raw);
      if (n !== 0 && (n < 64 || n % 32 !== 0))
        throw new Error(`must be 0 or a multiple of 32 from 64, got ${n}`);
      return n;
    },
  },
  maxQueued: {
    env: "MAX_QUEUED_GENERATIONS",
    description: "generations waiting before RESOURCE_EXHAUSTED",
    default: 16,
    parse: parse.int(0, 10_000),
  },
};
