// onnxruntime itself: creating a session and running it, the same code on the event loop and on a session's
// worker thread. It imports nothing heavier than onnxruntime-node, because every worker thread loads it.
import * as ort from "onnxruntime-node";
import { fromFloat16, toFloat16 } from "./float16.js";

export interface SessionSettings {
  /** Provider chain, most preferred first; "cpu" is always appended as the fallback. */
  readonly executionProviders: readonly string[];
  /** 0 lets onnxruntime use one thread per core. */
  readonly intraOpThreads: number;
  readonly graphOptimization: "disabled" | "basic" | "extended" | "all";
  /**
   * The CPU memory arena keeps its peak allocation for the life of the session: fast for fixed shapes, a
   * waste where images and tiles of many sizes come through.
   */
  readonly memoryArena: boolean;
  /**
   * Where the session runs: `worker` (the default) on a worker thread of its own, so that the event loop
   * answers health, cancel and progress while the model computes; `main` on the event loop, which every run
   * blocks (kept for comparing: ORT_THREADS=0).
   */
  readonly thread?: "worker" | "main";
  /** The device id given to the cuda, tensorrt and dml providers (onnxruntime-node carries only this option). */
  readonly deviceId?: number;
}

/** A tensor input or output as the model declares it; symbolic dimensions are strings. */
export interface TensorSpec {
  readonly name: string;
  /** onnxruntime's type name (`float32`, `float16`, `int64`, …), or `non-tensor`. */
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

/** A provider of the configured chain that could not be used for a model, and why. */
export interface ProviderFallback {
  readonly component: string;
  readonly provider: string;
  readonly reason: string;
}

/** A feed: float32 for float inputs (converted to float16 where the model takes it), integers for ids. */
export interface TensorFeed {
  readonly data: Float32Array | Int32Array | BigInt64Array;
  readonly dims: readonly number[];
}

/** An output, always float32 whatever the model returns it as. */
export interface TensorResult {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

export interface OpenSessionOptions {
  /**
   * For a model given as bytes: the directory its external data locations are relative to (onnxruntime's
   * `session.model_external_initializers_file_folder_path`).
   */
  readonly externalDataDir?: string;
  /**
   * For a model given as bytes that the caller will not use again: they move to the session's thread instead
   * of being copied there (the caller's buffer is detached). A patched model can be over a GiB.
   */
  readonly transferSource?: boolean;
}

/** A created session with what the wrapper needs to know about it. */
export interface CreatedSession {
  readonly session: ort.InferenceSession;
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
  /** The chain the session was created with (the configured one minus the providers that failed). */
  readonly providers: string[];
  readonly fallbacks: ProviderFallback[];
}

/** No provider of the chain could load the model; `detail` says why, for a ModelContractError. */
export class SessionLoadError extends Error {
  constructor(readonly detail: string) {
    super(detail);
    this.name = "SessionLoadError";
  }
}

/** The providers that take a device id. */
const DEVICE_PROVIDERS = new Set(["cuda", "tensorrt", "dml"]);

/**
 * Creates a session for component `name` from a file or from model bytes. Tries the provider chain, then
 * falls back provider by provider: a GPU provider missing its libraries must not stop the model from loading
 * on CPU.
 */
export async function createOrtSession(
  name: string,
  source: string | Uint8Array,
  settings: SessionSettings,
  externalDataDir: string | undefined,
): Promise<CreatedSession> {
  const chain = [...new Set([...settings.executionProviders, "cpu"])];
  let session: ort.InferenceSession | undefined;
  let used: string[] = chain;
  const fallbacks: ProviderFallback[] = [];
  let lastError: unknown;
  const extra = externalDataDir
    ? { extra: { session: { model_external_initializers_file_folder_path: externalDataDir } } }
    : {};
  for (let i = 0; i < chain.length && !session; i++) {
    used = chain.slice(i);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: used.map((provider) =>
        settings.deviceId !== undefined && DEVICE_PROVIDERS.has(provider)
          ? ({ name: provider, deviceId: settings.deviceId } as ort.InferenceSession.ExecutionProviderConfig)
          : provider,
      ),
      ...(settings.intraOpThreads > 0 ? { intraOpNumThreads: settings.intraOpThreads } : {}),
      graphOptimizationLevel: settings.graphOptimization,
      enableCpuMemArena: settings.memoryArena,
      ...extra,
    };
    try {
      session =
        typeof source === "string"
          ? await ort.InferenceSession.create(source, sessionOptions)
          : await ort.InferenceSession.create(source, sessionOptions);
    } catch (err) {
      lastError = err;
      fallbacks.push({ component: name, provider: chain[i] ?? "", reason: firstLine(err) });
    }
  }
  if (!session) {
    const what = typeof source === "string" ? source : `${name} (${source.byteLength} bytes in memory)`;
    throw new SessionLoadError(
      `cannot load ${name}: ${what} cannot be loaded by onnxruntime: ${firstLine(lastError)}`,
    );
  }
  const spec = (m: ort.InferenceSession.ValueMetadata): TensorSpec =>
    m.isTensor
      ? { name: m.name, type: m.type, shape: [...m.shape] }
      : { name: m.name, type: "non-tensor", shape: [] };
  return {
    session,
    inputs: session.inputMetadata.map(spec),
    outputs: session.outputMetadata.map(spec),
    providers: used,
    fallbacks,
  };
}

/**
 * Runs a session with onnxruntime tensors built by `tensorOf`; returns float32 outputs and the seconds
 * onnxruntime took.
 */
export async function runOrtSession(
  session: ort.InferenceSession,
  tensors: Record<string, ort.Tensor>,
  outputs: readonly string[] | undefined,
): Promise<{ results: Record<string, TensorResult>; seconds: number }> {
  const started = performance.now();
  const result = outputs ? await session.run(tensors, [...outputs]) : await session.run(tensors);
  const seconds = (performance.now() - started) / 1000;
  const out: Record<string, TensorResult> = {};
  // onnxruntime-node 1.23 returns requested fetches in the session's output order but labelled with the
  // session's first output names: relabel by position unless they came back under their own names.
  const entries = Object.entries(result);
  let named = entries;
  if (outputs && !outputs.every((n) => n in result)) {
    const order = session.outputNames;
    const sorted = [...outputs].sort((a, b) => order.indexOf(a) - order.indexOf(b));
    named = entries.map(([, t], i) => [sorted[i] ?? "", t]);
  }
  for (const [name, tensor] of named) {
    const data =
      tensor.type === "float16"
        ? fromFloat16(tensor.data as Uint16Array)
        : tensor.data instanceof Float32Array
          ? tensor.data
          : Float32Array.from(tensor.data as ArrayLike<number>, Number);
    out[name] = { data, dims: tensor.dims };
    tensor.dispose();
  }
  return { results: out, seconds };
}

/** A feed as the onnxruntime tensor of the input's declared type. */
export function toTensor(
  data: Float32Array | Int32Array | BigInt64Array,
  dims: readonly number[],
  type: string,
): ort.Tensor {
  switch (type) {
    case "float16":
      return new ort.Tensor("float16", toFloat16(data as Float32Array), dims);
    case "int64":
      return new ort.Tensor(
        "int64",
        data instanceof BigInt64Array
          ? data
          : BigInt64Array.from(data as ArrayLike<number>, (v) => BigInt(Math.round(Number(v)))),
        dims,
      );
    case "int32":
      return new ort.Tensor(
        "int32",
        data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>, Number),
        dims,
      );
    default:
      return new ort.Tensor(
        "float32",
        data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>, Number),
        dims,
      );
  }
}

/** The first line of an error's message, for contract errors that quote onnxruntime. */
export function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0]?.trim() ?? text;
}
