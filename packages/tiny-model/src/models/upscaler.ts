import type { ModelProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import { GraphBuilder, type Value } from "../onnx/graph-builder.js";
import { conv2d, type NetContext } from "../onnx/layers.js";
import { createWeightInit } from "../weight-init.js";

// An ESRGAN-shaped super-resolution net (basicsr's RRDBNet names, residual blocks simplified): features
// from conv_first, residual body blocks, conv_body, then conv_up to 3·scale² channels rearranged by
// DepthToSpace. The result is added to a bilinear upscale of the input, so the output is that image
// plus a little seeded "detail" rather than noise.

export interface UpscalerDims {
  readonly scale: 2 | 4;
  readonly numFeat: number;
  readonly numBlock: number;
}

function leakyRelu(g: GraphBuilder, x: Value): Value {
  return g.op("LeakyRelu", [x], { alpha: 0.2 });
}

export function buildUpscaler(d: UpscalerDims, seed: number): ModelProto {
  const g = new GraphBuilder("upscaler");
  const net: NetContext = { g, w: createWeightInit(seed) };
  const f = d.numFeat;
  const s = d.scale;
  const input = g.input("input", "float32", ["batch_size", 3, "height", "width"]);

  const first = leakyRelu(g, conv2d(net, input, "conv_first", 3, f));
  let x = first;
  for (let i = 0; i < d.numBlock; i++) {
    const h = leakyRelu(g, conv2d(net, x, `body.${i}.conv1`, f, f));
    const r = conv2d(net, h, `body.${i}.conv2`, f, f, { gain: 0.2 });
    x = g.scoped(`body.${i}`, () => g.op("Add", [x, r]));
  }
  x = g.op("Add", [first, conv2d(net, x, "conv_body", f, f)]);
  const detail = conv2d(net, x, "conv_up", f, 3 * s * s, { gain: 0.05 });
  const shuffled = g.scoped("pixel_shuffle", () =>
    g.op("DepthToSpace", [detail], { blocksize: s, mode: "CRD" }),
  );
  const base = g.scoped("base", () =>
    g.op("Resize", [input, "", g.float([1, 1, s, s])], {
      mode: "linear",
      coordinate_transformation_mode: "half_pixel",
    }),
  );
  g.output(g.op("Add", [base, shuffled]), "output", "float32", [
    "batch_size",
    3,
    `height * ${s}`,
    `width * ${s}`,
  ]);
  return g.toModel(`dmesh tiny ESRGAN-like ×${s} upscaler (seeded random weights)`);
}
