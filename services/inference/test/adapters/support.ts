import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import {
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
} from "@dmesh/contracts/onnx/onnx_pb.js";
import { writeOnnxModel } from "@dmesh/onnx";
import { type TinyModelKind, tinyAdapterDims, tinyAdapterModules } from "@dmesh/tiny-model";
import type { AdapterComponent, AdapterTarget, ModuleWeight } from "../../src/adapters/index.js";

/** The adapter target of the tiny model of `kind`, built from its dims (as the ONNX weight index will). */
export function tinyTarget(kind: TinyModelKind, layersPerBlock = 1): AdapterTarget {
  const components: Partial<Record<AdapterComponent, Map<string, ModuleWeight>>> = {};
  for (const m of tinyAdapterModules(tinyAdapterDims(kind, layersPerBlock))) {
    const map = components[m.component] ?? new Map<string, ModuleWeight>();
    map.set(m.path, { shape: m.shape });
    components[m.component] = map;
  }
  return { components, unetLayersPerBlock: layersPerBlock };
}

/** A target with extra modules added to one component. */
export function withModules(
  target: AdapterTarget,
  component: AdapterComponent,
  extra: Record<string, readonly number[]>,
): AdapterTarget {
  const map = new Map(target.components[component] ?? []);
  for (const [path, shape] of Object.entries(extra)) map.set(path, { shape });
  return { ...target, components: { ...target.components, [component]: map } };
}

export async function tempDir(
  prefix: string,
): Promise<{ path: string; file: (name: string) => string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `dmesh-${prefix}-`));
  return { path, file: (name) => join(path, name), remove: () => rm(path, { recursive: true, force: true }) };
}

/** Open file handles of this process: a refusal must leave none behind. */
export function openFileHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "FileHandle").length;
}

/** A float32 input or output of a graph, with its dims (a string for a symbolic one). */
function tensorValue(name: string, dims: readonly (number | string)[]) {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: "tensorType",
        value: create(TypeProto_TensorSchema, {
          elemType: 1,
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value:
                  typeof d === "number"
                    ? { case: "dimValue", value: BigInt(d) }
                    : { case: "dimParam", value: d },
              }),
            ),
          }),
        }),
      },
    }),
  });
}

/**
 * Writes `<dir>/model.onnx`: a small, valid ONNX graph that declares a split-export ControlNet's inputs and
 * outputs (SDXL's `text_embeds` and `time_ids` when `hiddenWidth` is 2048; less those in `without`) and holds a weight (400 KiB; `weightChannels` × 1280 bytes) before
 * its inputs, as exports store them, so that a reader must skip weights to find the inputs. It is what a
 * listing reads of a ControlNet; the controlnet work's generator writes one that computes residuals.
 */
export async function writeControlNetSignature(
  dir: string,
  hiddenWidth: number,
  without: readonly string[] = [],
  weightChannels = 320,
): Promise<string> {
  const sdxl = hiddenWidth === 2048;
  const inputs = [
    tensorValue("sample", ["batch", 4, "height", "width"]),
    tensorValue("timestep", ["batch"]),
    tensorValue("encoder_hidden_states", ["batch", 77, hiddenWidth]),
    ...(sdxl ? [tensorValue("text_embeds", ["batch", 1280]), tensorValue("time_ids", ["batch", 6])] : []),
    tensorValue("controlnet_cond", ["batch", 3, "image_height", "image_width"]),
    tensorValue("conditioning_scale", [1]),
  ];
  const weight = create(TensorProtoSchema, {
    name: "controlnet_down_blocks.0.weight",
    dataType: 1,
    dims: [BigInt(weightChannels), 320n, 1n, 1n],
    rawData: new Uint8Array(weightChannels * 320 * 4).map((_, i) => i % 251),
  });
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: "dmesh-test",
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: "", version: 17n })],
    graph: create(GraphProtoSchema, {
      name: "controlnet",
      node: [
        create(NodeProtoSchema, {
          opType: "Identity",
          input: ["sample"],
          output: ["mid_block_additional_residual"],
        }),
      ],
      initializer: [weight],
      input: inputs.filter((i) => !without.includes(i.name)),
      output: [tensorValue("mid_block_additional_residual", ["batch", 4, "height", "width"])],
    }),
  });
  const file = join(dir, "model.onnx");
  await writeOnnxModel(file, model);
  return file;
}
