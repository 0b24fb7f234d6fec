import type { ModelProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import type { VaeDims } from "../dims.js";
import { GraphBuilder, type Value } from "../onnx/graph-builder.js";
import { conv2d, type NetContext } from "../onnx/layers.js";
import { createWeightInit } from "../weight-init.js";
import { latentToRgb, structuredWeight } from "./vae.js";

// A tiny TAESD-layout decoder (the I/O of diffusers' AutoencoderTiny decoder, which live previews use): it takes
// the denoising latents as they are (AutoencoderTiny's scaling_factor is 1) and returns RGB in [-1, 1] at 8×.
// Like TAESD it first clamps the latents softly (tanh(x / 3) · 3) and upsamples by nearest neighbour; its
// structured weights map latents to colour with the real VAE's latent→RGB approximation, so a preview looks like
// the image coming, at full size, and unlike the bilinear decode of the full VAE.

const TAPS = 9;
const CENTER = 4;
const SHARPEN = [0, -0.125, 0, -0.125, 1.5, -0.125, 0, -0.125, 0];

export function buildTaesdDecoder(d: VaeDims, options: { seed: number }): ModelProto {
  const g = new GraphBuilder("taesd_decoder");
  const w = createWeightInit(options.seed ^ 0x7ae5d);
  const net: NetContext = { g, w };
  const c = d.channels;
  const lc = d.latentChannels;
  const a = latentToRgb(d);
  const latent = g.input("latent_sample", "float32", ["batch_size", lc, "latent_height", "latent_width"]);
  const three = g.float([3]);
  let x: Value = g.scoped("clamp", () => g.op("Mul", [g.op("Tanh", [g.op("Div", [latent, three])]), three]));
  // The latents arrive unscaled (AutoencoderKL divides them by scaling_factor; TAESD does not): the colour map
  // is the VAE's over scaling_factor.
  x = conv2d(net, x, "conv_in", lc, c, {
    weight: structuredWeight(
      w,
      "conv_in.weight",
      c,
      lc,
      TAPS,
      (o) => (o < 3 ? 0.002 : 0.05),
      (o, i, t) =>
        o < 3 ? (((a[o] as number[])[i] as number) / d.scalingFactor) * (SHARPEN[t] as number) : 0,
    ),
    bias: Float32Array.from({ length: c }, (_, o) => (o < 3 ? (d.latentRgbBias[o] as number) : 0)),
  });
  for (let u = 0; u < d.resolutionSteps; u++) {
    const name = `blocks.${u}`;
    const up = g.scoped(`${name}.upsample`, () =>
      g.op("Resize", [x, "", g.float([1, 1, 2, 2])], { mode: "nearest" }),
    );
    x = conv2d(net, up, `${name}.conv`, c, c, {
      weight: structuredWeight(w, `${name}.conv.weight`, c, c, TAPS, 0.004 / Math.sqrt(c), (o, i, t) =>
        o === i && t === CENTER ? 1 : 0,
      ),
      bias: new Float32Array(c),
    });
  }
  x = conv2d(net, x, "conv_out", c, 3, {
    weight: structuredWeight(w, "conv_out.weight", 3, c, TAPS, 0.01 / Math.sqrt(c), (o, i, t) =>
      o === i && t === CENTER ? 1 : 0,
    ),
    bias: new Float32Array(3),
  });
  const scale = 2 ** d.resolutionSteps;
  g.output(x, "sample", "float32", ["batch_size", 3, `latent_height * ${scale}`, `latent_width * ${scale}`]);
  return g.toModel("dmesh tiny TAESD-layout decoder (structured seeded weights)");
}
