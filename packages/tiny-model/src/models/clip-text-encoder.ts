import type { ModelProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import type { TextEncoderDims } from "../dims.js";
import type { TensorTypeName } from "../onnx/graph-builder.js";
import { GraphBuilder, type Value } from "../onnx/graph-builder.js";
import { activation, attention, layerNorm, linear, type NetContext, randomParam } from "../onnx/layers.js";
import { createWeightInit } from "../weight-init.js";

// transformers' CLIPTextModel / CLIPTextModelWithProjection with the I/O of optimum's CLIPTextOnnxConfig /
// CLIPTextWithProjectionOnnxConfig: token + position embeddings, pre-LN causal self-attention layers,
// final LayerNorm, pooled output at the argmax(input_ids) position (the EOS token, as CLIP pools).

export interface ClipTextEncoderOptions {
  readonly seed: number;
  readonly inputIdsType: Extract<TensorTypeName, "int32" | "int64">;
  readonly naming?: "parameters" | "exported";
}

const MASKED = -1e9; // large enough that softmax gives exactly 0, small enough never to overflow

function causalMask(g: GraphBuilder, maxPositions: number, seqLen: Value): Value {
  const values: number[] = [];
  for (let i = 0; i < maxPositions; i++)
    for (let j = 0; j < maxPositions; j++) values.push(j > i ? MASKED : 0);
  const full = g.float(values, [maxPositions, maxPositions]);
  const ends = g.op("Concat", [seqLen, seqLen], { axis: 0 });
  return g.op("Slice", [full, g.int64([0, 0]), ends, g.int64([0, 1])]);
}

function encoderLayer(net: NetContext, x: Value, i: number, d: TextEncoderDims, mask: Value): Value {
  const { g } = net;
  const name = `text_model.encoder.layers.${i}`;
  const h = d.hiddenSize;
  const headDim = h / d.numHeads;
  const normed = layerNorm(net, x, `${name}.layer_norm1`, h);
  const q = linear(net, normed, `${name}.self_attn.q_proj`, h, h);
  const k = linear(net, normed, `${name}.self_attn.k_proj`, h, h);
  const v = linear(net, normed, `${name}.self_attn.v_proj`, h, h);
  const attended = g.scoped(`${name}.self_attn`, () => attention(g, q, k, v, d.numHeads, headDim, mask));
  const afterAttn = g.op("Add", [x, linear(net, attended, `${name}.self_attn.out_proj`, h, h)]);
  const normed2 = layerNorm(net, afterAttn, `${name}.layer_norm2`, h);
  const up = linear(net, normed2, `${name}.mlp.fc1`, h, d.intermediateSize);
  const act = g.scoped(`${name}.mlp`, () => activation(g, up, d.hiddenAct));
  return g.op("Add", [afterAttn, linear(net, act, `${name}.mlp.fc2`, d.intermediateSize, h)]);
}

export function buildClipTextEncoder(d: TextEncoderDims, options: ClipTextEncoderOptions): ModelProto {
  const naming = options.naming ?? "parameters";
  const g = new GraphBuilder(
    d.withProjection ? "text_encoder_2" : "text_encoder",
    naming === "exported" ? "torch" : "dotted",
  );
  const net: NetContext = { g, w: createWeightInit(options.seed), naming };
  const h = d.hiddenSize;
  const ids = g.input("input_ids", options.inputIdsType, ["batch_size", "sequence_length"]);

  const tokenTable = randomParam(net, "text_model.embeddings.token_embedding.weight", [d.vocabSize, h], 1);
  const positionTable = randomParam(
    net,
    "text_model.embeddings.position_embedding.weight",
    [d.maxPositions, h],
    0.5,
  );
  const seqLen = g.op("Shape", [ids], { start: 1, end: 2 });
  let x = g.scoped("text_model.embeddings", () => {
    const tokens = g.op("Gather", [tokenTable, ids], { axis: 0 });
    const positions = g.op("Slice", [positionTable, g.int64([0]), seqLen, g.int64([0])]);
    return g.op("Add", [tokens, positions]);
  });
  const mask = g.scoped("text_model.encoder", () => causalMask(g, d.maxPositions, seqLen));

  const hiddenStates: Value[] = [x];
  for (let i = 0; i < d.numLayers; i++) {
    x = encoderLayer(net, x, i, d, mask);
    hiddenStates.push(x);
  }
  const last = layerNorm(net, x, "text_model.final_layer_norm", h);
  const pooled = g.scoped("text_model", () => {
    // CLIP pools the EOS position: with EOS as the highest id, argmax(input_ids) finds its first occurrence.
    const eos = g.op("ArgMax", [g.op("Cast", [ids], { to: 1 })], { axis: 1, keepdims: 1 });
    return g.op("GatherND", [last, eos], { batch_dims: 1 });
  });

  const seq = ["batch_size", "sequence_length", h];
  if (d.withProjection) {
    // CLIPTextModelWithProjection's text_projection: a Linear without bias.
    const embeds = linear(net, pooled, "text_projection", h, d.projectionDim, { bias: false, input2d: true });
    g.output(embeds, "text_embeds", "float32", ["batch_size", d.projectionDim]);
    g.output(last, "last_hidden_state", "float32", seq);
  } else {
    g.output(last, "last_hidden_state", "float32", seq);
    g.output(pooled, "pooler_output", "float32", ["batch_size", h]);
  }
  hiddenStates.forEach((state, i) => {
    g.output(state, `hidden_states.${i}`, "float32", seq);
  });
  const kind = d.withProjection ? "CLIPTextModelWithProjection" : "CLIPTextModel";
  return g.toModel(`dmesh tiny ${kind} (seeded random weights)`);
}
