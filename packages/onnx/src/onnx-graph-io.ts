import { type FileHandle, open } from "node:fs/promises";
import { fromBinary } from "@bufbuild/protobuf";
import { type ValueInfoProto, ValueInfoProtoSchema } from "@dmesh/contracts/onnx/onnx_pb.js";
import { ModelContractError } from "./model-contract-error.js";
import { dataTypeName, type TensorDataType } from "./tensor-data-type.js";

// Field numbers of onnx.proto that the walk below follows; everything else is skipped unread.
const MODEL_GRAPH = 7;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;
/** A graph input or output's declaration is a name and a shape: anything larger is no ValueInfoProto. */
const MAX_VALUE_INFO_BYTES = 1 << 20;
const CHUNK_BYTES = 64 * 1024;

/** One graph input or output as declared: dtype and dims (a symbolic dim as its name, an unknown one as -1). */
export interface GraphValue {
  readonly name: string;
  readonly dataType: TensorDataType | undefined;
  readonly dims: readonly (number | string)[];
}

export interface OnnxGraphIo {
  readonly inputs: readonly GraphValue[];
  readonly outputs: readonly GraphValue[];
}

/** Positioned reads through a small window, so that walking many small fields costs few system calls. */
class WindowReader {
  private window = Buffer.alloc(0);
  private windowStart = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  async bytes(position: number, length: number): Promise<Buffer> {
    const inWindow = position - this.windowStart;
    if (inWindow >= 0 && inWindow + length <= this.window.length)
      return this.window.subarray(inWindow, inWindow + length);
    const want = Math.min(Math.max(length, CHUNK_BYTES), this.size - position);
    const buffer = Buffer.alloc(Math.max(want, 0));
    let done = 0;
    while (done < want) {
      const { bytesRead } = await this.handle.read(buffer, done, want - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    this.window = buffer.subarray(0, done);
    this.windowStart = position;
    return this.window.subarray(0, Math.min(length, done));
  }

  /** A varint at `position`: its value and its length in bytes. */
  async varint(position: number): Promise<{ value: number; length: number }> {
    const bytes = await this.bytes(position, 10);
    let value = 0;
    let scale = 1;
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i] as number;
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return { value, length: i + 1 };
      scale *= 128;
    }
    throw new Error(`a varint at byte ${position} does not end`);
  }
}

/**
 * The graph inputs and outputs a model file declares, read without reading its weights: the protobuf walk
 * skips every field but the graph's `input` and `output` entries, so that describing a multi-gigabyte export
 * reads kilobytes (`readOnnxModel` reads the whole file). Errors name the file.
 */
export async function readOnnxGraphIo(file: string, model = file): Promise<OnnxGraphIo> {
  const handle = await open(file, "r").catch((error: Error) => {
    throw new ModelContractError(model, `${file} cannot be read: ${error.message}`);
  });
  try {
    const reader = new WindowReader(handle, (await handle.stat()).size);
    const inputs: GraphValue[] = [];
    const outputs: GraphValue[] = [];
    let graphs = 0;
    await walk(reader, 0, reader.size, async (field, start, length) => {
      if (field !== MODEL_GRAPH) return;
      graphs++;
      await walk(reader, start, start + length, async (graphField, at, size) => {
        if (graphField !== GRAPH_INPUT && graphField !== GRAPH_OUTPUT) return;
        if (size > MAX_VALUE_INFO_BYTES) throw new Error(`a graph input or output of ${size} bytes`);
        const info = fromBinary(ValueInfoProtoSchema, new Uint8Array(await reader.bytes(at, size)));
        (graphField === GRAPH_INPUT ? inputs : outputs).push(graphValue(info));
      });
    });
    if (graphs === 0) throw new Error("it holds no graph");
    return { inputs, outputs };
  } catch (error) {
    if (error instanceof ModelContractError) throw error;
    throw new ModelContractError(model, `${file} is not an ONNX model: ${(error as Error).message}`);
  } finally {
    await handle.close();
  }
}

/** Calls `onField` for each length-delimited field of the message in [start, end); skips the others. */
async function walk(
  reader: WindowReader,
  start: number,
  end: number,
  onField: (field: number, start: number, length: number) => Promise<void>,
): Promise<void> {
  let at = start;
  while (at < end) {
    const tag = await reader.varint(at);
    at += tag.length;
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    if (field === 0) throw new Error(`field number 0 at byte ${at - tag.length}`);
    if (wire === WIRE_VARINT) at += (await reader.varint(at)).length;
    else if (wire === WIRE_I64) at += 8;
    else if (wire === WIRE_I32) at += 4;
    else if (wire === WIRE_LEN) {
      const length = await reader.varint(at);
      at += length.length;
      if (at + length.value > end) throw new Error(`field ${field} at byte ${at} runs past its message`);
      await onField(field, at, length.value);
      at += length.value;
    } else throw new Error(`wire type ${wire} at byte ${at - tag.length}`);
  }
  if (at !== end) throw new Error(`a field runs past byte ${end}`);
}

function graphValue(info: ValueInfoProto): GraphValue {
  const type = info.type?.value;
  if (type?.case !== "tensorType") return { name: info.name, dataType: undefined, dims: [] };
  return {
    name: info.name,
    dataType: dataTypeName(type.value.elemType),
    dims: (type.value.shape?.dim ?? []).map((d) =>
      d.value.case === "dimValue" ? Number(d.value.value) : d.value.case === "dimParam" ? d.value.value : -1,
    ),
  };
}
