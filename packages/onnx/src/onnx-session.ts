import * as ort from "onnxruntime-node";
import { fromFloat16, toFloat16 } from "./float16.js";
import { ModelContractError } from "./model-contract-error.js";

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
  /** The device id given to the cuda, tensorrt and dml providers (onnxruntime-node carries only this option). */
  readonly deviceId?: number;
}

/** CPU only, all graph optimizations, no arena: what a service that bounds its memory wants. */
export function cpuSessionSettings(intraOpThreads = 0): SessionSettings {
  return { executionProviders: ["cpu"], intraOpThreads, graphOptimization: "all", memoryArena: false };
}

/** Providers that take a device id. */
const DEVICE_PROVIDERS = new Set(["cuda", "tensorrt", "dml"]);

/** Time spent inside onnxruntime `run` calls, for the pipeline-overhead figures. */
export class RunClock {
  seconds = 0;
  calls = 0;
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

export interface RunOptions {
  /** Outputs to compute (all by default): a UNet run needs one. */
  readonly outputs?: readonly string[];
  /** Adds the run's time and count. */
  readonly clock?: RunClock;
}

export interface OpenSessionOptions {
  /**
   * For a model given as bytes: the directory its external data locations are relative to (onnxruntime's
   * `session.model_external_initializers_file_folder_path`).
   */
  readonly externalDataDir?: string;
}

/**
 * One ONNX model in onnxruntime: its session, its declared inputs and outputs, float32 in and out whatever
 * it stores. Typed arrays and dims go in and come out; no onnxruntime type crosses this API, so runs can
 * move off the event loop without changing callers.
 */
export class OnnxSession {
  /**
   * Tensors of float32 feeds that callers pass again (the same array, rewritten in place between runs, as a
   * denoising loop does): building an onnxruntime Tensor costs more than a tiny model's step.
   */
  private readonly feedTensors = new WeakMap<Float32Array, ort.Tensor>();

  private constructor(
    readonly model: string,
    readonly name: string,
    private readonly session: ort.InferenceSession,
    readonly inputs: ReadonlyMap<string, TensorSpec>,
    readonly outputs: ReadonlyMap<string, TensorSpec>,
    /** The chain the session was created with (the configured one minus the providers that failed). */
    readonly providers: string[],
    readonly fallbacks: readonly ProviderFallback[],
  ) {}

  /**
   * Creates the session for model `model`'s component `name` from a file or from model bytes. Tries the
   * provider chain, then falls back provider by provider: a GPU provider missing its libraries must not stop
   * the model from loading on CPU. A model onnxruntime cannot load is a ModelContractError naming the file.
   */
  static async open(
    model: string,
    name: string,
    source: string | Uint8Array,
    settings: SessionSettings,
    options: OpenSessionOptions = {},
  ): Promise<OnnxSession> {
    const chain = [...new Set([...settings.executionProviders, "cpu"])];
    let session: ort.InferenceSession | undefined;
    let used: string[] = chain;
    const fallbacks: ProviderFallback[] = [];
    let lastError: unknown;
    const extra = options.externalDataDir
      ? { extra: { session: { model_external_initializers_file_folder_path: options.externalDataDir } } }
      : {};
    for (let i = 0; i < chain.length && !session; i++) {
      used = chain.slice(i);
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        executionProviders: used.map((name) =>
          settings.deviceId !== undefined && DEVICE_PROVIDERS.has(name)
            ? ({ name, deviceId: settings.deviceId } as ort.InferenceSession.ExecutionProviderConfig)
            : name,
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
      throw new ModelContractError(
        model,
        `cannot load ${name}: ${what} cannot be loaded by onnxruntime: ${firstLine(lastError)}`,
      );
    }
    const spec = (m: ort.InferenceSession.ValueMetadata): TensorSpec =>
      m.isTensor
        ? { name: m.name, type: m.type, shape: m.shape }
        : { name: m.name, type: "non-tensor", shape: [] };
    return new OnnxSession(
      model,
      name,
      session,
      new Map(session.inputMetadata.map((m) => [m.name, spec(m)])),
      new Map(session.outputMetadata.map((m) => [m.name, spec(m)])),
      used,
      fallbacks,
    );
  }

  input(name: string): TensorSpec | undefined {
    return this.inputs.get(name);
  }

  /** Throws a contract error naming this model, component and input unless the input exists. */
  requireInput(name: string, types: readonly string[]): TensorSpec {
    const spec = this.inputs.get(name);
    if (!spec) {
      throw new ModelContractError(
        this.model,
        `${this.name} has no input "${name}" (it has ${[...this.inputs.keys()].join(", ")})`,
      );
    }
    if (!types.includes(spec.type)) {
      throw new ModelContractError(
        this.model,
        `${this.name} input "${name}" is ${spec.type}; expected ${types.join(" or ")}`,
      );
    }
    return spec;
  }

  /** Runs with float32/int feeds, converting to the stored dtype; returns float32 outputs. */
  async run(
    feeds: Readonly<Record<string, TensorFeed>>,
    options: RunOptions = {},
  ): Promise<Record<string, TensorResult>> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      const type = this.inputs.get(name)?.type ?? "float32";
      const reusable = type === "float32" && feed.data instanceof Float32Array ? feed.data : undefined;
      const cached = reusable && this.feedTensors.get(reusable);
      if (cached && sameDims(cached.dims, feed.dims)) {
        tensors[name] = cached;
        continue;
      }
      tensors[name] = toTensor(feed.data, feed.dims, type);
      if (reusable) this.feedTensors.set(reusable, tensors[name]);
    }
    const { outputs, clock } = options;
    const started = performance.now();
    const result = outputs ? await this.session.run(tensors, [...outputs]) : await this.session.run(tensors);
    if (clock) {
      clock.seconds += (performance.now() - started) / 1000;
      clock.calls++;
    }
    const out: Record<string, TensorResult> = {};
    // onnxruntime-node 1.23 returns requested fetches in the session's output order but labelled with the
    // session's first output names: relabel by position unless they came back under their own names.
    const entries = Object.entries(result);
    let named = entries;
    if (outputs && !outputs.every((n) => n in result)) {
      const order = [...this.outputs.keys()];
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
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Opens a session: see `OnnxSession.open`. */
export function openOnnxSession(
  model: string,
  name: string,
  source: string | Uint8Array,
  settings: SessionSettings,
  options?: OpenSessionOptions,
): Promise<OnnxSession> {
  return OnnxSession.open(model, name, source, settings, options);
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The first line of an error's message, for contract errors that quote onnxruntime. */
export function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0]?.trim() ?? text;
}

function toTensor(
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
