import { commonSettings, parse } from "@dmesh/runtime";
import { parseSafetyPolicyTable } from "./safety/safety-policy.js";

const fraction = (raw: string): number => {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new Error("must be a number from 0 to 1");
  return n;
};

/** Every setting of the postprocess service; the README's table is `configTable(postprocessSettings)`. */
export const postprocessSettings = {
  ...commonSettings,
  port: { env: "PORT", description: "gRPC port", default: 50053, parse: parse.int(0, 65535) },
  maxInputPixels: {
    env: "MAX_INPUT_PIXELS",
    description: "largest input image (width x height) decoded; larger ones are refused before decoding",
    default: 64 * 1024 * 1024,
    parse: parse.int(1, 1 << 30),
  },
  maxInputBytes: {
    env: "MAX_INPUT_BYTES",
    description: "largest encoded input image, in bytes (ProcessStream takes it in chunks)",
    default: 32 * 1024 * 1024,
    parse: parse.int(1, 2 ** 31 - 1),
  },
  maxOutputPixels: {
    env: "MAX_OUTPUT_PIXELS",
    description: "largest image an upscale may make (width x height)",
    default: 8192 * 8192,
    parse: parse.int(1, 1 << 30),
  },
  pixelBudget: {
    env: "PIXEL_BUDGET",
    description:
      "pixels that requests in progress may hold at once (each: its input plus the largest image it makes); others wait, first come first served; one larger than this runs alone",
    default: 160 * 1024 * 1024,
    parse: parse.int(1, 2 ** 40),
  },
  upscaleModelsDir: {
    env: "UPSCALE_MODELS_DIR",
    description:
      "directory of super-resolution ONNX models, one subdirectory per model (UpscaleSpec.model); empty = model upscaling off",
    default: "",
    parse: parse.string,
  },
  upscaleTileSize: {
    env: "UPSCALE_TILE_SIZE",
    description:
      "tile side, in input pixels, that super-resolution models run on (memory grows with its square)",
    default: 256,
    parse: parse.int(16, 4096),
  },
  upscaleTileOverlap: {
    env: "UPSCALE_TILE_OVERLAP",
    description: "input pixels neighbouring tiles share and blend across (at most half a tile)",
    default: 16,
    parse: parse.int(0, 2048),
  },
  upscaleModelCache: {
    env: "UPSCALE_MODEL_CACHE",
    description: "super-resolution models kept loaded; the least recently used beyond it are released",
    default: 2,
    parse: parse.int(1, 64),
  },
  safetyModelDir: {
    env: "SAFETY_MODEL_DIR",
    description:
      "image classifier for the safety stage (transformers ONNX export layout; `dmesh-tiny-model <dir> --artifact safety-classifier` writes the tiny default); empty = none, only the pass policy",
    default: "",
    parse: parse.string,
  },
  safetyPolicy: {
    env: "SAFETY_POLICY",
    description:
      "policy when a request names none: pass, flag, blur or reject, then optional per-tenant ones (flag,acme=reject)",
    default: "pass",
    parse: (raw: string) => {
      parseSafetyPolicyTable(raw);
      return raw;
    },
  },
  safetyThreshold: {
    env: "SAFETY_THRESHOLD",
    description: "unsafe score (0-1) at or above which an image is flagged",
    default: 0.5,
    parse: fraction,
  },
  safetyUnsafeLabels: {
    env: "SAFETY_UNSAFE_LABELS",
    description: "classifier labels whose probabilities add up to the unsafe score",
    default: "nsfw,unsafe,porn,hentai,sexy,explicit",
    parse: (raw: string) => {
      if (!raw.split(",").some((l) => l.trim())) throw new Error("needs at least one label");
      return raw;
    },
  },
  sharedMemoryDir: {
    env: "SHARED_MEMORY_DIR",
    description:
      "directory whose files same-host callers may name as shared-memory regions for input and output images (SharedMemoryRef; a tmpfs such as /dev/shm/dmesh, made if missing); no other file is read or written; empty = off",
    default: "",
    parse: parse.string,
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
};
