import * as ort from "onnxruntime-node";
import { fromFloat16, toFloat16 } from "./float16.js";
import { ModelContractError } from "./model-errors.js";

export interface SessionSettings {
  /** Provider chain, most preferred first; "cpu" is always appended as the fallback. */
  executionProviders: string[];
  intraOpThreads: number;
  graphOptimization: "disabled" | "basic" | "extended" | "all";
  memoryArena: boolean;
}

/** Time spent inside onnxruntime `run` calls, for the pipeline-overhead figures. */
export class RunClock {
  seconds = 0;
  calls = 0;
}

export interface TensorSpec {
  readonly name: string;
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

/** A provider of the configured chain that could not be used for a component, and why. */
export interface ProviderFallback {
  readonly component: string;
  readonly provider: string;
  readonly reason: string;
}

/** One ONNX sub-model: its session, its declared inputs/outputs, and float32 in/out whatever it stores. */
export class OnnxComponent {
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

  static async load(
    model: string,
    name: string,
    file: string,
    settings: SessionSettings,
  ): Promise<OnnxComponent> {
    const chain = [...new Set([...settings.executionProviders, "cpu"])];
    let session: ort.InferenceSession | undefined;
    let used: string[] = chain;
    const fallbacks: ProviderFallback[] = [];
    let lastError: unknown;
    // Try the chain, then fall back provider by provider: a GPU provider missing its libraries must not stop
    // the model from loading on CPU.
    for (let i = 0; i < chain.length && !session; i++) {
      used = chain.slice(i);
      try {
        session = await ort.InferenceSession.create(file, {
          executionProviders: used,
          ...(settings.intraOpThreads > 0 ? { intraOpNumThreads: settings.intraOpThreads } : {}),
          graphOptimizationLevel: settings.graphOptimization,
          enableCpuMemArena: settings.memoryArena,
        });
      } catch (err) {
        lastError = err;
        fallbacks.push({ component: name, provider: chain[i] ?? "", reason: firstLine(err) });
      }
    }
    if (!session)
      throw new ModelContractError(model, `cannot load ${name} (${file}): ${firstLine(lastError)}`);
    const spec = (m: ort.InferenceSession.ValueMetadata): TensorSpec =>
      m.isTensor
        ? { name: m.name, type: m.type, shape: m.shape }
        : { name: m.name, type: "non-tensor", shape: [] };
    return new OnnxComponent(
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
  requireInput(name: string, types: string[]): TensorSpec {
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
    feeds: Record<string, { data: Float32Array | Int32Array | BigInt64Array; dims: readonly number[] }>,
    clock: RunClock,
    outputs?: string[],
  ): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>> {
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
    const started = performance.now();
    const result = outputs ? await this.session.run(tensors, outputs) : await this.session.run(tensors);
    clock.seconds += (performance.now() - started) / 1000;
    clock.calls++;
    const out: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
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
            : Float32Array.from(tensor.data as ArrayLike<number>);
      out[name] = { data, dims: tensor.dims };
      tensor.dispose();
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function firstLine(err: unknown): string {
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
