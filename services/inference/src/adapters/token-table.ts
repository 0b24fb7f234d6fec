import { create } from "@bufbuild/protobuf";
import {
  type GraphProto,
  type NodeProto,
  NodeProtoSchema,
  type TensorProto,
  TensorProtoSchema,
} from "@dmesh/contracts/onnx/onnx_pb.js";
import { type OnnxModel, shallowCopy } from "@dmesh/onnx";

// A text encoder's token-embedding table, and the one place its graph reads token ids as numbers.
// Textual-inversion vectors become new rows past the vocabulary, reached by new token ids. CLIP pools the
// EOS position by argmax(input_ids) (transformers' CLIPTextTransformer with the legacy eos id that SD
// and SDXL configs keep), which a new id above EOS would win: the ids the argmax sees are masked to 0
// past the vocabulary, so pooling finds EOS as before.

/** Ops that pass token ids through unchanged in value (dtype or shape aside). */
const ID_PASSTHROUGH = new Set(["Cast", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"]);

const INPUT_IDS = "input_ids";

/** ONNX TensorProto.DataType codes this rewrite writes constants for. */
const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;

export interface TokenTable {
  /** The initializer holding the table, [vocabulary, width]. */
  readonly initializer: string;
  readonly rows: number;
  readonly width: number;
}

function producers(graph: GraphProto | undefined): Map<string, NodeProto> {
  const out = new Map<string, NodeProto>();
  for (const node of graph?.node ?? []) for (const o of node.output) out.set(o, node);
  return out;
}

/** Whether `tensor` is `input_ids` seen through ops that keep its values. */
function carriesIds(tensor: string, made: ReadonlyMap<string, NodeProto>): boolean {
  for (let depth = 0; depth < 8; depth++) {
    if (tensor === INPUT_IDS) return true;
    const node = made.get(tensor);
    if (node === undefined || !ID_PASSTHROUGH.has(node.opType)) return false;
    tensor = node.input[0] ?? "";
  }
  return false;
}

/** The token-embedding table: the 2-D float initializer that a Gather indexes with `input_ids`. */
export function findTokenTable(model: OnnxModel): TokenTable | undefined {
  const graph = model.proto.graph;
  const made = producers(graph);
  for (const node of graph?.node ?? []) {
    if (node.opType !== "Gather") continue;
    const table = model.initializers.get(node.input[0] ?? "");
    if (table === undefined || table.dims.length !== 2 || !table.dataType.startsWith("float")) continue;
    if (!carriesIds(node.input[1] ?? "", made)) continue;
    return { initializer: table.name, rows: table.dims[0] as number, width: table.dims[1] as number };
  }
  return undefined;
}

/** The element type of `tensor` where the graph says it: a graph input's type, or a Cast's `to`. */
function elementType(graph: GraphProto, tensor: string, made: ReadonlyMap<string, NodeProto>): number {
  const node = made.get(tensor);
  if (node?.opType === "Cast") return Number(node.attribute.find((a) => a.name === "to")?.i ?? 0);
  const input = graph.input.find((i) => i.name === tensor);
  return input?.type?.value.case === "tensorType" ? input.type.value.value.elemType : 0;
}

function scalar(name: string, type: number, value: number) {
  const bytes =
    type === FLOAT
      ? new Uint8Array(new Float32Array([value]).buffer)
      : type === INT32
        ? new Uint8Array(new Int32Array([value]).buffer)
        : new Uint8Array(new BigInt64Array([BigInt(value)]).buffer);
  return create(TensorProtoSchema, { name, dataType: type, dims: [], rawData: bytes });
}

/**
 * A graph transform for createPatchedSession: every ArgMax over token ids reads them with ids ≥ `vocabulary`
 * replaced by 0. Throws when a pooling argmax reads ids of a type it cannot mask (never seen in exports).
 */
export function maskNewIdsForPooling(vocabulary: number): (graph: GraphProto) => GraphProto {
  return (graph) => {
    const made = producers(graph);
    const added: NodeProto[] = [];
    const constants: TensorProto[] = [];
    const nodes = graph.node.map((node) => {
      if (node.opType !== "ArgMax" || !carriesIds(node.input[0] ?? "", made)) return node;
      const source = node.input[0] as string;
      const type = elementType(graph, source, made);
      if (type !== FLOAT && type !== INT32 && type !== INT64)
        throw new RangeError(`text encoder pools with ArgMax over ids of ONNX type ${type}`);
      const tag = `dmesh_ti_${added.length}`;
      constants.push(scalar(`${tag}_vocabulary`, type, vocabulary), scalar(`${tag}_zero`, type, 0));
      added.push(
        create(NodeProtoSchema, {
          name: `/${tag}/Less`,
          opType: "Less",
          input: [source, `${tag}_vocabulary`],
          output: [`${tag}_known`],
        }),
        create(NodeProtoSchema, {
          name: `/${tag}/Where`,
          opType: "Where",
          input: [`${tag}_known`, source, `${tag}_zero`],
          output: [`${tag}_ids`],
        }),
      );
      const copy = shallowCopy(node);
      copy.input = [`${tag}_ids`, ...node.input.slice(1)];
      return copy;
    });
    if (added.length === 0) return graph;
    // Each inserted pair goes right before its ArgMax, which keeps the node list topologically sorted.
    const ordered: NodeProto[] = [];
    let pair = 0;
    for (const [i, node] of nodes.entries()) {
      if (node !== graph.node[i]) {
        ordered.push(added[pair * 2] as NodeProto, added[pair * 2 + 1] as NodeProto);
        pair++;
      }
      ordered.push(node);
    }
    const result = shallowCopy(graph);
    result.node = ordered;
    result.initializer = [...graph.initializer, ...constants];
    return result;
  };
}
