import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  GraphProtoSchema,
  type ModelProto,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  TensorProto_DataLocation,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
} from "@dmesh/contracts/onnx/onnx_pb.js";
import { type TinyModelOptions, writeTinyModel } from "@dmesh/tiny-model";

/** A fresh temporary directory and a function that removes it. */
export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `dmesh-onnx-${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** The four naming × storage variants of the tiny model, written with one seed. */
export const VARIANTS = {
  "parameters, inline": { naming: "parameters", externalData: false },
  "parameters, external data": { naming: "parameters", externalData: true },
  "exported, inline": { naming: "exported", externalData: false },
  "exported, external data": { naming: "exported", externalData: true },
} as const satisfies Record<string, Partial<TinyModelOptions>>;
export type VariantName = keyof typeof VARIANTS;

export async function writeVariants(
  root: string,
  extra: Partial<TinyModelOptions> = {},
): Promise<Record<VariantName, string>> {
  const dirs = {} as Record<VariantName, string>;
  for (const [name, options] of Object.entries(VARIANTS) as [VariantName, Partial<TinyModelOptions>][]) {
    const dir = join(root, name.replace(/[^a-z]+/g, "-"));
    await writeTinyModel(dir, { ...options, ...extra });
    dirs[name] = dir;
  }
  return dirs;
}

/**
 * y = x + w₁ + w₂ + … over float32 [n]: the smallest models with initializers whose storage a test sets
 * (inline raw_data, or external data entries of its choosing).
 */
export function addModel(n: number, weights: readonly TensorProto[]): ModelProto {
  const info = (name: string) =>
    create(ValueInfoProtoSchema, {
      name,
      type: create(TypeProtoSchema, {
        value: {
          case: "tensorType",
          value: create(TypeProto_TensorSchema, {
            elemType: 1,
            shape: create(TensorShapeProtoSchema, {
              dim: [
                create(TensorShapeProto_DimensionSchema, { value: { case: "dimValue", value: BigInt(n) } }),
              ],
            }),
          }),
        },
      }),
    });
  return create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: "test",
    graph: create(GraphProtoSchema, {
      name: "add",
      node: weights.map((w, i) =>
        create(NodeProtoSchema, {
          input: [i === 0 ? "x" : `sum${i}`, w.name],
          output: [i === weights.length - 1 ? "y" : `sum${i + 1}`],
          name: `/Add_${i}`,
          opType: "Add",
        }),
      ),
      initializer: [...weights],
      input: [info("x")],
      output: [info("y")],
    }),
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: 17n })],
  });
}

/** A float32 [n] initializer whose bytes are in an external file, described by `entries`. */
export function externalFloats(
  name: string,
  n: number,
  entries: Record<string, string>,
  dataType = 1,
): TensorProto {
  return create(TensorProtoSchema, {
    dims: [BigInt(n)],
    dataType,
    name,
    externalData: Object.entries(entries).map(([key, value]) =>
      create(StringStringEntryProtoSchema, { key, value }),
    ),
    dataLocation: TensorProto_DataLocation.EXTERNAL,
  });
}
