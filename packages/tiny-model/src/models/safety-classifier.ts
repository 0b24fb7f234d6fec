import type { ModelProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import { GraphBuilder } from "../onnx/graph-builder.js";
import { conv2d, linear, type NetContext, silu } from "../onnx/layers.js";
import { createWeightInit } from "../weight-init.js";

// A small CNN image classifier with the I/O of a transformers image-classification ONNX export
// (`pixel_values` → `logits`), labels normal/nsfw. Its classifier bias leans to "normal" so that a
// pipeline using it keeps most images, while the logits still depend on every pixel.

export interface SafetyClassifierDims {
  readonly imageSize: number;
  readonly channels: readonly number[];
  readonly labels: readonly string[];
}

export function buildSafetyClassifier(d: SafetyClassifierDims, seed: number): ModelProto {
  const g = new GraphBuilder("safety_classifier");
  const net: NetContext = { g, w: createWeightInit(seed) };
  const pixels = g.input("pixel_values", "float32", ["batch_size", 3, d.imageSize, d.imageSize]);
  let x = pixels;
  let inC = 3;
  d.channels.forEach((outC, i) => {
    x = silu(g, conv2d(net, x, `features.${i}`, inC, outC, { stride: 2 }));
    inC = outC;
  });
  const pooled = g.scoped("pool", () => g.op("Flatten", [g.op("GlobalAveragePool", [x])], { axis: 1 }));
  const logits = linear(net, pooled, "classifier", inC, d.labels.length, { bias: false });
  const lean = d.labels.map((label) => (label === "normal" ? 1.5 : -1.5));
  const biased = g.scoped("classifier", () =>
    g.op("Add", [logits, g.initializer("classifier.bias", Float32Array.from(lean), [lean.length])]),
  );
  g.output(biased, "logits", "float32", ["batch_size", d.labels.length]);
  return g.toModel("dmesh tiny image safety classifier (seeded random weights)");
}
