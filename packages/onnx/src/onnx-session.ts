import type * as ort from "onnxruntime-node";
import { ModelContractError } from "./model-contract-error.js";
import {
  createOrtSession,
  type OpenSessionOptions,
  type ProviderFallback,
  runOrtSession,
  SessionLoadError,
  type SessionSettings,
  type TensorFeed,
  type TensorResult,
  type TensorSpec,
  toTensor,
} from "./ort-session.js";
import { SessionThread } from "./session-thread.js";

export type {
  OpenSessionOptions,
  ProviderFallback,
  SessionSettings,
  TensorFeed,
  TensorResult,
  TensorSpec,
} from "./ort-session.js";
export { firstLine } from "./ort-session.js";

/** CPU only, all graph optimizations, no arena: what a service that bounds its memory wants. */
export function cpuSessionSettings(
  intraOpThreads = 0,
  thread: "worker" | "main" = "worker",
): SessionSettings {
  return {
    executionProviders: ["cpu"],
    intraOpThreads,
    graphOptimization: "all",
    memoryArena: false,
    thread,
  };
}

/** Time spent inside onnxruntime `run` calls, for the pipeline-overhead figures. */
export class RunClock {
  seconds = 0;
  calls = 0;
}

export interface RunOptions {
  /** Outputs to compute (all by default): a UNet run needs one. */
  readonly outputs?: readonly string[];
  /** Adds the run's time and count. */
  readonly clock?: RunClock;
}

/** Where a session's runs happen: its worker thread, or the event loop. */
interface SessionRunner {
  run(
    feeds: Readonly<Record<string, TensorFeed>>,
    outputs: readonly string[] | undefined,
  ): Promise<{ results: Record<string, TensorResult>; seconds: number }>;
  release(): Promise<void>;
}

/**
 * One ONNX model in onnxruntime: its session, its declared inputs and outputs, float32 in and out whatever
 * it stores. Typed arrays and dims go in and come out; no onnxruntime type crosses this API. The session
 * lives on a worker thread of its own unless its settings say `thread: "main"`: onnxruntime-node runs a
 * model synchronously, and on the event loop nothing else would be answered meanwhile.
 */
export class OnnxSession {
  private constructor(
    readonly model: string,
    readonly name: string,
    private readonly runner: SessionRunner,
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
    try {
      if ((settings.thread ?? "worker") === "main") {
        const created = await createOrtSession(name, source, settings, options.externalDataDir);
        const runner = new LoopRunner(created.session, created.inputs);
        return new OnnxSession(
          model,
          name,
          runner,
          byName(created.inputs),
          byName(created.outputs),
          created.providers,
          created.fallbacks,
        );
      }
      const [thread, opened] = await SessionThread.open(
        `model "${model}" ${name}`,
        { name, source, settings, externalDataDir: options.externalDataDir },
        options.transferSource ?? false,
      );
      return new OnnxSession(
        model,
        name,
        thread,
        byName(opened.inputs),
        byName(opened.outputs),
        opened.providers,
        opened.fallbacks,
      );
    } catch (err) {
      if (err instanceof SessionLoadError) throw new ModelContractError(model, err.detail);
      throw err;
    }
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

  /**
   * Runs with float32/int feeds, converting to the stored dtype; returns float32 outputs. The caller keeps
   * its feed arrays (they are read, not kept); the outputs are new arrays of the caller's own.
   */
  async run(
    feeds: Readonly<Record<string, TensorFeed>>,
    options: RunOptions = {},
  ): Promise<Record<string, TensorResult>> {
    const { results, seconds } = await this.runner.run(feeds, options.outputs);
    if (options.clock) {
      options.clock.seconds += seconds;
      options.clock.calls++;
    }
    return results;
  }

  /** Releases the session (and ends its thread) once the runs already asked for are done. */
  async release(): Promise<void> {
    await this.runner.release();
  }
}

/** Runs on the event loop, which each run blocks (`thread: "main"`). */
class LoopRunner implements SessionRunner {
  /**
   * Tensors of float32 feeds that callers pass again (the same array, rewritten in place between runs, as a
   * denoising loop does): building an onnxruntime Tensor costs more than a tiny model's step.
   */
  private readonly feedTensors = new WeakMap<Float32Array, ort.Tensor>();
  private readonly types: ReadonlyMap<string, string>;

  constructor(
    private readonly session: ort.InferenceSession,
    inputs: readonly TensorSpec[],
  ) {
    this.types = new Map(inputs.map((i) => [i.name, i.type]));
  }

  run(
    feeds: Readonly<Record<string, TensorFeed>>,
    outputs: readonly string[] | undefined,
  ): Promise<{ results: Record<string, TensorResult>; seconds: number }> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      const type = this.types.get(name) ?? "float32";
      const reusable = type === "float32" && feed.data instanceof Float32Array ? feed.data : undefined;
      const cached = reusable && this.feedTensors.get(reusable);
      if (cached && sameDims(cached.dims, feed.dims)) {
        tensors[name] = cached;
        continue;
      }
      tensors[name] = toTensor(feed.data, feed.dims, type);
      if (reusable) this.feedTensors.set(reusable, tensors[name]);
    }
    return runOrtSession(this.session, tensors, outputs);
  }

  release(): Promise<void> {
    return this.session.release();
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

function byName(specs: readonly TensorSpec[]): ReadonlyMap<string, TensorSpec> {
  return new Map(specs.map((s) => [s.name, s]));
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
