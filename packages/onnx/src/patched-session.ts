import { link, mkdir, mkdtemp, open, rm, symlink } from "node:fs/promises";
import { basename, join, relative } from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { type GraphProto, ModelProtoSchema, type TensorProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import { externalTensor, shallowCopy, writeAtomically } from "./encode-onnx-model.js";
import type { OnnxModel } from "./onnx-model.js";
import { OnnxSession, type SessionSettings } from "./onnx-session.js";
import { bytesOfArray, elementCount, fromFloat32 } from "./tensor-data-type.js";
import type { TensorPatch } from "./weight-index.js";

export interface PatchedSessionOptions {
  /** The component's name in errors and logs ("unet", "text_encoder"). */
  readonly name: string;
  readonly settings: SessionSettings;
  /**
   * A patched model up to this many bytes (graph, patched tensors and small inline ones) is built in memory;
   * a larger one is written under `cacheDir`. Protobuf cannot hold 2 GiB, the default leaves room below it.
   */
  readonly maxInMemoryBytes?: number;
  /** Where larger patched models are written (a directory each, removed when the session is released). */
  readonly cacheDir?: string;
  /**
   * Changes to the graph besides new tensor values (nodes inserted before a consumer, with their constants
   * as inline initializers), applied to a copy whose initializers are already resolved. It must return new
   * arrays rather than change the ones it is given, which the base model shares.
   */
  readonly transformGraph?: (graph: GraphProto) => GraphProto;
}

export interface PatchedSession {
  readonly session: OnnxSession;
  /** The directory written for the session when it did not fit in memory; removed by `release`. */
  readonly directory: string | undefined;
  /** Bytes of the patched tensors as stored (in the base's dtype). */
  readonly patchedBytes: number;
  release(): Promise<void>;
}

export const DEFAULT_MAX_IN_MEMORY_BYTES = 1.5 * 2 ** 30;
const PATCHED_DATA_FILE = "patched.onnx_data";

/**
 * A session of `base` with some initializers replaced (`patches`: name → float32 values in the stored
 * layout, possibly of another shape, e.g. a token-embedding table grown by N rows; stored back in the
 * initializer's dtype). The base's other tensors are not copied: they stay byte ranges of the base's files.
 *
 * - In memory when the patched model fits `maxInMemoryBytes`: the patched tensors inline, every other
 *   tensor external data pointing into the base's files, resolved against the base's directory.
 * - Otherwise in a new directory under `cacheDir`: `model.onnx`, the patched tensors in
 *   `patched.onnx_data`, and the base's files linked in (a hard link, else a symlink), because onnxruntime
 *   reads external data only from the model's own directory.
 */
export async function createPatchedSession(
  base: OnnxModel,
  patches: ReadonlyMap<string, TensorPatch>,
  options: PatchedSessionOptions,
): Promise<PatchedSession> {
  const stored = new Map<string, { dims: readonly number[]; bytes: Uint8Array }>();
  let patchedBytes = 0;
  for (const [name, patch] of patches) {
    const info = base.initializers.get(name);
    if (!info) throw new RangeError(`${base.file} has no initializer "${name}" to patch`);
    if (elementCount(patch.dims) !== patch.data.length)
      throw new RangeError(
        `patch of "${name}": dims [${patch.dims}] hold ${elementCount(patch.dims)} values, not ${patch.data.length}`,
      );
    const values = fromFloat32(info.dataType, patch.data);
    if (!values) throw new RangeError(`patch of "${name}": the initializer is ${info.dataType}, not a float`);
    const bytes = bytesOfArray(values);
    stored.set(name, { dims: patch.dims, bytes });
    patchedBytes += bytes.byteLength;
  }
  let inline = patchedBytes + graphBytes(base);
  for (const [name, info] of base.initializers)
    if (!stored.has(name) && info.location.kind === "memory") inline += info.location.bytes.byteLength;

  if (inline <= (options.maxInMemoryBytes ?? DEFAULT_MAX_IN_MEMORY_BYTES)) {
    const proto = patchedProto(base, options.transformGraph, (name, tensor) => {
      const patch = stored.get(name);
      if (patch) return withData(tensor, patch.dims, patch.bytes);
      const location = base.initializer(name).location;
      if (location.kind === "memory") return withData(tensor, undefined, location.bytes);
      return externalTensor(tensor, relative(base.dir, location.file), location.offset, location.length);
    });
    const session = await OnnxSession.open(
      base.id,
      options.name,
      toBinary(ModelProtoSchema, proto),
      options.settings,
      // The bytes were built for this session alone: they move to its thread rather than being copied.
      { externalDataDir: base.dir, transferSource: true },
    );
    return { session, directory: undefined, patchedBytes, release: () => session.release() };
  }

  if (!options.cacheDir)
    throw new RangeError(
      `the patched ${options.name} needs ${inline} bytes, more than fit in memory, and no cacheDir was given`,
    );
  await mkdir(options.cacheDir, { recursive: true });
  const directory = await mkdtemp(join(options.cacheDir, "patched-"));
  try {
    const linked = new Map<string, string>();
    const linkName = async (file: string): Promise<string> => {
      let name = linked.get(file);
      if (name === undefined) {
        name = `base-${linked.size}-${basename(file)}`;
        await link(file, join(directory, name)).catch(() => symlink(file, join(directory, name as string)));
        linked.set(file, name);
      }
      return name;
    };
    const data = await open(join(directory, PATCHED_DATA_FILE), "w");
    let offset = 0;
    const tensors = new Map<string, TensorProto>();
    try {
      for (const tensor of base.proto.graph?.initializer ?? []) {
        const patch = stored.get(tensor.name);
        const location = base.initializer(tensor.name).location;
        if (patch) {
          await data.write(patch.bytes, 0, patch.bytes.byteLength, offset);
          const written = externalTensor(tensor, PATCHED_DATA_FILE, offset, patch.bytes.byteLength);
          written.dims = patch.dims.map(BigInt);
          tensors.set(tensor.name, written);
          offset += patch.bytes.byteLength;
        } else if (location.kind === "memory") {
          tensors.set(tensor.name, withData(tensor, undefined, location.bytes));
        } else {
          const name = await linkName(location.file);
          tensors.set(tensor.name, externalTensor(tensor, name, location.offset, location.length));
        }
      }
    } finally {
      await data.close();
    }
    const file = join(directory, "model.onnx");
    await writeAtomically(
      file,
      toBinary(
        ModelProtoSchema,
        patchedProto(base, options.transformGraph, (name) => tensors.get(name) as TensorProto),
      ),
    );
    const session = await OnnxSession.open(base.id, options.name, file, options.settings);
    return {
      session,
      directory,
      patchedBytes,
      release: async () => {
        await session.release();
        await rm(directory, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
}

/** The base's model with each main-graph initializer replaced by `tensor(name, skeleton)`, then `transform`ed. */
function patchedProto(
  base: OnnxModel,
  transform: ((graph: GraphProto) => GraphProto) | undefined,
  tensor: (name: string, skeleton: TensorProto) => TensorProto,
) {
  const model = shallowCopy(base.proto);
  const graph = shallowCopy(model.graph as NonNullable<typeof model.graph>);
  graph.initializer = graph.initializer.map((t) => tensor(t.name, t));
  model.graph = transform === undefined ? graph : transform(graph);
  return model;
}

function withData(tensor: TensorProto, dims: readonly number[] | undefined, bytes: Uint8Array): TensorProto {
  const out = shallowCopy(tensor);
  if (dims) out.dims = dims.map(BigInt);
  out.rawData = bytes;
  return out;
}

const graphSizes = new WeakMap<OnnxModel, number>();

/** Bytes of the base's model without its initializers' data. */
function graphBytes(base: OnnxModel): number {
  let size = graphSizes.get(base);
  if (size === undefined) {
    size = toBinary(ModelProtoSchema, base.proto).byteLength;
    graphSizes.set(base, size);
  }
  return size;
}
