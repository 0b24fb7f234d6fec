import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import * as ort from "onnxruntime-node";

export { ort };

/** A fresh temporary directory and a function that removes it. */
export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `dmesh-tiny-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export async function openSession(path: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, { executionProviders: ["cpu"], graphOptimizationLevel: "all" });
}

export interface Io {
  readonly name: string;
  readonly type: string;
  readonly dims: readonly (number | string)[];
}

/** A session's inputs or outputs as {name, type, dims}, in declaration order. */
export function ioOf(metadata: readonly ort.InferenceSession.ValueMetadata[]): Io[] {
  return metadata.map((m) => {
    if (!m.isTensor) throw new Error(`${m.name} is not a tensor`);
    return { name: m.name, type: m.type, dims: [...m.shape] };
  });
}

export function floats(tensor: ort.Tensor): Float32Array {
  if (!(tensor.data instanceof Float32Array)) throw new Error(`expected float32, got ${tensor.type}`);
  return tensor.data;
}

export function allFinite(tensor: ort.Tensor): boolean {
  return floats(tensor).every(Number.isFinite);
}

export function maxAbsDiff(a: ort.Tensor, b: ort.Tensor): number {
  const x = floats(a);
  const y = floats(b);
  if (x.length !== y.length) throw new Error("size mismatch");
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs((x[i] as number) - (y[i] as number)));
  return max;
}

/** Smooth deterministic test data in about [-amplitude, amplitude]. */
export function wave(count: number, amplitude = 1, phase = 0): Float32Array {
  return Float32Array.from(
    { length: count },
    (_, i) => amplitude * Math.sin(i * 0.37 + phase) * Math.cos(i * 0.011),
  );
}

export function floatTensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor("float32", data, dims);
}

/** A tensor of integer ids in the dtype the model declares. */
export function idsTensor(type: string, ids: readonly number[], dims: readonly number[]): ort.Tensor {
  if (type === "int64") return new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), dims);
  return new ort.Tensor("int32", Int32Array.from(ids), dims);
}

/** Decodes ModelProto.graph.initializer (name, dims) from `model.onnx` bytes (onnx.proto field numbers). */
export async function readInitializers(path: string): Promise<Map<string, number[]>> {
  const bytes = new Uint8Array(await readFile(path));
  const result = new Map<string, number[]>();
  const model = new BinaryReader(bytes);
  while (model.pos < model.len) {
    const [field, wire] = model.tag();
    if (field !== 7) {
      model.skip(wire);
      continue;
    }
    const graph = new BinaryReader(model.bytes());
    while (graph.pos < graph.len) {
      const [gField, gWire] = graph.tag();
      if (gField !== 5) {
        graph.skip(gWire);
        continue;
      }
      const tensor = new BinaryReader(graph.bytes());
      const dims: number[] = [];
      let name = "";
      while (tensor.pos < tensor.len) {
        const [tField, tWire] = tensor.tag();
        if (tField === 1 && tWire === WireType.Varint) dims.push(Number(tensor.int64()));
        else if (tField === 8) name = tensor.string();
        else tensor.skip(tWire);
      }
      result.set(name, dims);
    }
  }
  return result;
}

/** CLIP's BPE applied to one pre-tokenized word, by merge rank (as openai/CLIP's `bpe`). */
export function bpe(
  word: string,
  ranks: ReadonlyMap<string, number>,
  byteSymbol: readonly string[],
): string[] {
  let parts = Array.from(new TextEncoder().encode(word), (b) => byteSymbol[b] as string);
  parts[parts.length - 1] += "</w>";
  for (;;) {
    let best = -1;
    let bestRank = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < parts.length; i++) {
      const rank = ranks.get(`${parts[i]} ${parts[i + 1]}`);
      if (rank !== undefined && rank < bestRank) {
        best = i;
        bestRank = rank;
      }
    }
    if (best < 0) return parts;
    const [a, b] = [parts[best] as string, parts[best + 1] as string];
    const merged: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      if (parts[i] === a && parts[i + 1] === b) {
        merged.push(a + b);
        i++;
      } else merged.push(parts[i] as string);
    }
    parts = merged;
  }
}
