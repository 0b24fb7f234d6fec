import { ConfigError, parse } from "@dmesh/runtime";

/**
 * Execution-provider options from the environment (ORT_*), one table: each option's variable, its parse, and the
 * providers it belongs to. What the installed onnxruntime-node can carry into a session is applied; an option
 * set for a provider in the chain that the binding cannot carry is a startup error naming its variable, never a
 * setting that silently does nothing.
 */
export const providerOptionSettings = {
  ortDeviceId: {
    env: "ORT_DEVICE_ID",
    description:
      "onnxruntime device id for cuda, tensorrt and dml (-1 = the N of the device service's recommended device cuda:N, else 0)",
    default: -1,
    parse: parse.int(-1, 63),
  },
  ortCudaArenaExtendStrategy: {
    env: "ORT_CUDA_ARENA_EXTEND_STRATEGY",
    description:
      "CUDA memory arena growth (kNextPowerOfTwo, kSameAsRequested; empty = onnxruntime's default); not carried by onnxruntime-node 1.23, see deploy/README",
    default: "" as "" | "kNextPowerOfTwo" | "kSameAsRequested",
    parse: parse.oneOf("", "kNextPowerOfTwo", "kSameAsRequested"),
  },
  ortCudaMemLimit: {
    env: "ORT_CUDA_MEM_LIMIT",
    description: "CUDA arena limit in bytes (0 = none); not carried by onnxruntime-node 1.23",
    default: 0,
    parse: parse.int(0, Number.MAX_SAFE_INTEGER),
  },
  ortCudnnConvAlgoSearch: {
    env: "ORT_CUDA_CUDNN_CONV_ALGO_SEARCH",
    description:
      "cuDNN convolution algorithm search (EXHAUSTIVE, HEURISTIC, DEFAULT; empty = onnxruntime's default); not carried by onnxruntime-node 1.23",
    default: "" as "" | "EXHAUSTIVE" | "HEURISTIC" | "DEFAULT",
    parse: parse.oneOf("", "EXHAUSTIVE", "HEURISTIC", "DEFAULT"),
  },
  ortTrtEngineCacheDir: {
    env: "ORT_TRT_ENGINE_CACHE_DIR",
    description: "TensorRT engine cache directory (empty = no cache); not carried by onnxruntime-node 1.23",
    default: "",
    parse: (raw: string) => {
      if (raw !== "" && !raw.startsWith("/")) throw new Error("must be an absolute path");
      return raw;
    },
  },
  ortTrtFp16: {
    env: "ORT_TRT_FP16",
    description: "TensorRT fp16 kernels; not carried by onnxruntime-node 1.23 (use an fp16 export instead)",
    default: false,
    parse: parse.bool,
  },
};

export type ProviderOptionsConfig = {
  readonly [K in keyof typeof providerOptionSettings]: ReturnType<
    (typeof providerOptionSettings)[K]["parse"]
  >;
};

/** The providers onnxruntime-node gives a device id (`{ name, deviceId }`). */
const DEVICE_PROVIDERS = new Set(["cuda", "tensorrt", "dml"]);

/**
 * What the installed binding carries per provider: onnxruntime-node 1.23's js/node/src/session_options_helper.cc
 * reads only `deviceId` for cuda, tensorrt and dml, and creates their V2 options with onnxruntime's defaults
 * otherwise (which also makes the TensorRT provider ignore its ORT_TENSORRT_* variables).
 */
const CARRIED: Readonly<Record<string, readonly (keyof ProviderOptionsConfig)[]>> = {
  cuda: ["ortDeviceId"],
  tensorrt: ["ortDeviceId"],
  dml: ["ortDeviceId"],
};

/** Which provider each option configures. */
const OPTION_PROVIDERS: Readonly<Record<keyof ProviderOptionsConfig, readonly string[]>> = {
  ortDeviceId: ["cuda", "tensorrt", "dml"],
  ortCudaArenaExtendStrategy: ["cuda"],
  ortCudaMemLimit: ["cuda"],
  ortCudnnConvAlgoSearch: ["cuda"],
  ortTrtEngineCacheDir: ["tensorrt"],
  ortTrtFp16: ["tensorrt"],
};

/** The provider options sessions are created with, as the startup log line shows them. */
export interface ProviderSetup {
  /** The device id given to cuda, tensorrt and dml; undefined when none of them is in the chain. */
  readonly deviceId: number | undefined;
  /** Per provider of the chain, the options applied (`{ cuda: { deviceId: 0 } }`). */
  readonly applied: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/**
 * The options a provider chain runs with: the device id (ORT_DEVICE_ID, else the N of the device service's
 * recommended `cuda:N` / `dml:N`, else 0). An option set away from its default for a provider of the chain that
 * the binding cannot carry is a ConfigError naming every such variable at once.
 */
export function providerSetup(
  chain: readonly string[],
  config: ProviderOptionsConfig,
  recommendedDevice?: string,
): ProviderSetup {
  const problems: string[] = [];
  for (const key of Object.keys(providerOptionSettings) as (keyof ProviderOptionsConfig)[]) {
    const setting = providerOptionSettings[key];
    if (config[key] === setting.default) continue;
    for (const provider of OPTION_PROVIDERS[key].filter((p) => chain.includes(p))) {
      if (!CARRIED[provider]?.includes(key)) {
        problems.push(
          `${setting.env}: cannot take effect: onnxruntime-node's binding passes only deviceId to the ${provider} provider (unset it; see deploy/README.md)`,
        );
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const devices = chain.filter((p) => DEVICE_PROVIDERS.has(p));
  if (devices.length === 0) return { deviceId: undefined, applied: {} };
  const recommended = /^(?:cuda|dml):(\d+)$/.exec(recommendedDevice ?? "")?.[1];
  const deviceId = config.ortDeviceId >= 0 ? config.ortDeviceId : Number(recommended ?? 0);
  return { deviceId, applied: Object.fromEntries(devices.map((p) => [p, { deviceId }])) };
}
