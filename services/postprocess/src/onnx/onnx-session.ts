import * as ort from "onnxruntime-node";
import { ModelContractError } from "../models/model-contract-error.js";

/** A tensor input or output as the model declares it; symbolic dimensions are strings. */
export interface TensorInfo {
  readonly name: string;
  readonly type: string;
  readonly shape: readonly (number | string)[];
}

export interface OnnxSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  /** Runs float32 feeds; returns every output as float32 with its dims. */
  run(feeds: Record<string, FloatFeed>): Promise<Record<string, FloatFeed>>;
  release(): Promise<void>;
}

export interface FloatFeed {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

export interface OnnxSessionOptions {
  /** 0 lets onnxruntime use one thread per core. */
  readonly intraOpThreads?: number;
}

/**
 * Opens a CPU session on `file`. The CPU memory arena is off: it keeps its peak allocation for the life of
 * the session, and a postprocess replica serves tiles and images of many sizes with memory it must bound.
 */
export async function openOnnxSession(
  model: string,
  file: string,
  options: OnnxSessionOptions = {},
): Promise<OnnxSession> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      enableCpuMemArena: false,
      ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    });
  } catch (error) {
    throw new ModelContractError(model, `${file} cannot be loaded by onnxruntime: ${firstLine(error)}`);
  }
  const info = (m: ort.InferenceSession.ValueMetadata): TensorInfo =>
    m.isTensor
      ? { name: m.name, type: m.type, shape: m.shape }
      : { name: m.name, type: "non-tensor", shape: [] };
  return {
    inputs: session.inputMetadata.map(info),
    outputs: session.outputMetadata.map(info),
    async run(feeds) {
      const tensors: Record<string, ort.Tensor> = {};
      for (const [name, feed] of Object.entries(feeds)) {
        tensors[name] = new ort.Tensor("float32", feed.data, [...feed.dims]);
      }
      // Without fetch names: onnxruntime-node 1.23 labels requested fetches with the wrong output names.
      const result = await session.run(tensors);
      const out: Record<string, FloatFeed> = {};
      for (const [name, value] of Object.entries(result)) {
        // Loading checked that the outputs this service reads are float32.
        if (value.type === "float32") out[name] = { data: value.data as Float32Array, dims: value.dims };
      }
      return out;
    },
    release: () => session.release(),
  };
}

/** The first line of an error's message, for contract errors that quote onnxruntime. */
export function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0]?.trim() ?? message;
}
