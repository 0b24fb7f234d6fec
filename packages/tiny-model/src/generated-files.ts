import { dirname, join } from "node:path";
import type { ModelProto, ValueInfoProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import { dataTypeName, EXTERNAL_DATA_FILE, encodeOnnxModel } from "@dmesh/onnx";
import type { Dim, TensorTypeName } from "./onnx/graph-builder.js";

/** One file of a generated model directory, by its path relative to the directory. */
export interface GeneratedFile {
  readonly path: string;
  readonly content: Uint8Array | string;
}

/** An input or output of an ONNX model. */
export interface ModelIo {
  readonly name: string;
  readonly type: TensorTypeName;
  /** Numbers are fixed, strings symbolic; `[]` is a scalar. */
  readonly dims: readonly Dim[];
}

export interface ModelSignature {
  readonly inputs: readonly ModelIo[];
  readonly outputs: readonly ModelIo[];
}

/** What a generator produces: the files, and the I/O of each ONNX file among them (keyed by path). */
export interface GeneratedContents {
  readonly files: readonly GeneratedFile[];
  readonly models: Readonly<Record<string, ModelSignature>>;
}

/** Collects generated files; ONNX models are serialized and their signatures recorded. */
export class ContentsBuilder {
  private readonly files: GeneratedFile[] = [];
  private readonly models: Record<string, ModelSignature> = {};

  /** The model at `path`; with `externalData`, its weights in `model.onnx_data` beside it, as optimum writes them. */
  onnx(path: string, model: ModelProto, { externalData = false }: { externalData?: boolean } = {}): this {
    this.models[path] = {
      inputs: (model.graph?.input ?? []).map(io),
      outputs: (model.graph?.output ?? []).map(io),
    };
    const encoded = encodeOnnxModel(
      model,
      externalData ? { externalData: { location: EXTERNAL_DATA_FILE } } : {},
    );
    this.files.push({ path, content: encoded.model });
    if (encoded.externalData)
      this.files.push({ path: join(dirname(path), EXTERNAL_DATA_FILE), content: encoded.externalData });
    return this;
  }

  json(path: string, value: unknown): this {
    this.files.push({ path, content: `${JSON.stringify(value, null, 2)}\n` });
    return this;
  }

  text(path: string, content: string): this {
    this.files.push({ path, content });
    return this;
  }

  build(): GeneratedContents {
    const files = [...this.files].sort((a, b) => (a.path < b.path ? -1 : 1));
    return { files, models: this.models };
  }
}

function io(v: ValueInfoProto): ModelIo {
  const tensor = v.type?.value.case === "tensorType" ? v.type.value.value : undefined;
  const dims = (tensor?.shape?.dim ?? []).map(
    (d): Dim => (d.value.case === "dimValue" ? Number(d.value.value) : (d.value.value ?? "")),
  );
  return { name: v.name, type: dataTypeName(tensor?.elemType ?? 0) as TensorTypeName, dims };
}
