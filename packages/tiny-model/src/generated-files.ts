import { type Dim, encodeModel, type ModelProto, type TensorTypeName } from "./onnx/onnx-proto.js";

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

  onnx(path: string, model: ModelProto): this {
    const io = (list: ModelProto["graph"]["inputs"]): ModelIo[] =>
      list.map((v) => ({ name: v.name, type: v.type, dims: v.dims ?? [] }));
    this.models[path] = { inputs: io(model.graph.inputs), outputs: io(model.graph.outputs) };
    this.files.push({ path, content: encodeModel(model) });
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
