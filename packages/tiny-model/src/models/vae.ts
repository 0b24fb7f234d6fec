import type { ModelProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import type { VaeDims } from "../dims.js";
import { GraphBuilder, type Value } from "../onnx/graph-builder.js";
import { conv2d, type NetContext } from "../onnx/layers.js";
import type { TinyModelOptions } from "../options.js";
import { createWeightInit, type WeightInit } from "../weight-init.js";

// A tiny AutoencoderKL with the I/O of optimum's VaeDecoderOnnxConfig / VaeEncoderOnnxConfig. A random
// decoder would paint noise, so the weights are structured instead: the decoder maps latents to RGB with
// the known latent→RGB approximation of the real VAE (blurred, then upsampled bilinearly three times,
// with a little seeded channel mixing), and the encoder inverts that map (2×2 average pooling three times,
// then the pseudo-inverse of the latent→RGB matrix). So pictures are smooth and coloured like a real
// decode, and decode(encode(image)) gives back a blurred image (img2img and inpainting behave). Parameter names follow diffusers' AutoencoderKL.

const KERNEL = 3;
const TAPS = KERNEL * KERNEL;
const CENTER = 4;
const BLUR = [1, 2, 1, 2, 4, 2, 1, 2, 1].map((v) => v / 16);

/** latent (raw, as the decoder receives it) → RGB: rgb = A·z + bias, A[c][i] = factors[i][c]·scaling. */
export function latentToRgb(d: VaeDims): number[][] {
  return [0, 1, 2].map((c) => d.latentRgbFactors.map((row) => (row[c] as number) * d.scalingFactor));
}

/** Moore–Penrose pseudo-inverse of a full-row-rank 3×n matrix: Aᵀ(AAᵀ)⁻¹, n×3. */
function pseudoInverse(a: number[][]): number[][] {
  const m = [0, 1, 2].map((i) =>
    [0, 1, 2].map((j) =>
      (a[i] as number[]).reduce((s, v, k) => s + v * ((a[j] as number[])[k] as number), 0),
    ),
  );
  const at = (i: number, j: number): number => (m[i] as number[])[j] as number;
  const det =
    at(0, 0) * (at(1, 1) * at(2, 2) - at(1, 2) * at(2, 1)) -
    at(0, 1) * (at(1, 0) * at(2, 2) - at(1, 2) * at(2, 0)) +
    at(0, 2) * (at(1, 0) * at(2, 1) - at(1, 1) * at(2, 0));
  const inv = [0, 1, 2].map((i) =>
    [0, 1, 2].map((j) => {
      // adjugate: cofactor of (j, i)
      const r = [0, 1, 2].filter((k) => k !== j);
      const c = [0, 1, 2].filter((k) => k !== i);
      const [r0, r1] = r as [number, number];
      const [c0, c1] = c as [number, number];
      const minor = at(r0, c0) * at(r1, c1) - at(r0, c1) * at(r1, c0);
      return ((i + j) % 2 === 0 ? minor : -minor) / det;
    }),
  );
  const n = (a[0] as number[]).length;
  return Array.from({ length: n }, (_, k) =>
    [0, 1, 2].map((j) =>
      [0, 1, 2].reduce(
        (s, i) => s + ((a[i] as number[])[k] as number) * ((inv[i] as number[])[j] as number),
        0,
      ),
    ),
  );
}

/**
 * A conv weight [out, in, 3, 3] (or 1×1 when `taps` is 1): `structure(o, i, tap)` plus seeded noise of
 * standard deviation `noise(o)` for output channel o, so each seed still gives its own model.
 */
export function structuredWeight(
  w: WeightInit,
  name: string,
  outC: number,
  inC: number,
  taps: number,
  noise: number | ((o: number) => number),
  structure: (o: number, i: number, tap: number) => number,
): Float32Array {
  const values = w.uniform(name, outC * inC * taps, 1);
  for (let o = 0; o < outC; o++) {
    const std = typeof noise === "number" ? noise : noise(o);
    for (let i = 0; i < inC; i++)
      for (let t = 0; t < taps; t++) {
        const k = (o * inC + i) * taps + t;
        values[k] = (values[k] as number) * std + structure(o, i, t);
      }
  }
  return values;
}

export const identity1x1 = (o: number, i: number): number => (o === i ? 1 : 0);

export function buildVaeDecoder(d: VaeDims, options: Pick<TinyModelOptions, "seed">): ModelProto {
  const g = new GraphBuilder("vae_decoder");
  const w = createWeightInit(options.seed);
  const net: NetContext = { g, w };
  const c = d.channels;
  const lc = d.latentChannels;
  const a = latentToRgb(d);
  const latent = g.input("latent_sample", "float32", ["batch_size", lc, "latent_height", "latent_width"]);

  let x = conv2d(net, latent, "post_quant_conv", lc, lc, {
    kernel: 1,
    weight: structuredWeight(w, "post_quant_conv.weight", lc, lc, 1, 0.02, identity1x1),
    bias: new Float32Array(lc),
  });
  // Channels 0–2 carry RGB; the rest are seeded features (of about unit size) that tint it slightly.
  const featureStd = d.scalingFactor / Math.sqrt(lc * TAPS);
  x = conv2d(net, x, "decoder.conv_in", lc, c, {
    weight: structuredWeight(
      w,
      "decoder.conv_in.weight",
      c,
      lc,
      TAPS,
      (o) => (o < 3 ? 0.002 : 1) * featureStd,
      (o, i, t) => (o < 3 ? ((a[o] as number[])[i] as number) * (BLUR[t] as number) : 0),
    ),
    bias: Float32Array.from({ length: c }, (_, o) => (o < 3 ? (d.latentRgbBias[o] as number) : 0)),
  });
  for (let u = 0; u < d.resolutionSteps; u++) {
    const name = `decoder.up_blocks.${u}.upsamplers.0`;
    const up = g.scoped(name, () =>
      g.op("Resize", [x, "", g.float([1, 1, 2, 2])], {
        mode: "linear",
        coordinate_transformation_mode: "half_pixel",
      }),
    );
    x = conv2d(net, up, `${name}.conv`, c, c, {
      weight: structuredWeight(w, `${name}.conv.weight`, c, c, TAPS, 0.003 / Math.sqrt(c), (o, i, t) =>
        o === i && t === CENTER ? 1 : 0,
      ),
      bias: new Float32Array(c),
    });
  }
  x = conv2d(net, x, "decoder.conv_out", c, 3, {
    weight: structuredWeight(w, "decoder.conv_out.weight", 3, c, TAPS, 0.01 / Math.sqrt(c), (o, i, t) =>
      o === i && t === CENTER ? 1 : 0,
    ),
    bias: new Float32Array(3),
  });
  const scale = 2 ** d.resolutionSteps;
  g.output(x, "sample", "float32", ["batch_size", 3, `latent_height * ${scale}`, `latent_width * ${scale}`]);
  return g.toModel("dmesh tiny AutoencoderKL decoder (structured seeded weights)");
}

export type VaeEncoderOptions = Pick<TinyModelOptions, "seed" | "vaeEncoderOutput">;

export function buildVaeEncoder(d: VaeDims, options: VaeEncoderOptions): ModelProto {
  const g = new GraphBuilder("vae_encoder");
  const w = createWeightInit(options.seed);
  const net: NetContext = { g, w };
  const c = d.channels;
  const lc = d.latentChannels;
  const inverse = pseudoInverse(latentToRgb(d));
  const image = g.input("sample", "float32", ["batch_size", 3, "height", "width"]);

  let x: Value = conv2d(net, image, "encoder.conv_in", 3, c, {
    weight: structuredWeight(w, "encoder.conv_in.weight", c, 3, TAPS, 0.02, (o, i, t) =>
      o === i && t === CENTER ? 1 : 0,
    ),
    bias: new Float32Array(c),
  });
  for (let s = 0; s < d.resolutionSteps; s++) {
    const name = `encoder.down_blocks.${s}.downsamplers.0.conv`;
    // diffusers pads right and bottom by one, then convolves with stride 2: the top-left 2×2 taps average.
    x = conv2d(net, x, name, c, c, {
      stride: 2,
      pads: [0, 0, 1, 1],
      weight: structuredWeight(w, `${name}.weight`, c, c, TAPS, 0.01 / Math.sqrt(c), (o, i, t) =>
        o === i && (t === 0 || t === 1 || t === 3 || t === CENTER) ? 0.25 : 0,
      ),
      bias: new Float32Array(c),
    });
  }
  const moments = 2 * lc; // mean ++ logvar
  x = conv2d(net, x, "encoder.conv_out", c, moments, {
    weight: structuredWeight(
      w,
      "encoder.conv_out.weight",
      moments,
      c,
      TAPS,
      0.01 / Math.sqrt(c),
      (o, i, t) => (o < lc && i < 3 && t === CENTER ? ((inverse[o] as number[])[i] as number) : 0),
    ),
    // mean = A⁺·(rgb − bias); logvar ≈ −6: a narrow posterior, as a trained VAE's is.
    bias: Float32Array.from({ length: moments }, (_, o) =>
      o < lc ? -(inverse[o] as number[]).reduce((s, v, i) => s + v * (d.latentRgbBias[i] as number), 0) : -6,
    ),
  });
  x = conv2d(net, x, "quant_conv", moments, moments, {
    kernel: 1,
    weight: structuredWeight(w, "quant_conv.weight", moments, moments, 1, 0.005, identity1x1),
    bias: new Float32Array(moments),
  });
  const scale = 2 ** d.resolutionSteps;
  const dims = (channels: number) => ["batch_size", channels, `height / ${scale}`, `width / ${scale}`];
  if (options.vaeEncoderOutput === "latent_parameters") {
    g.output(x, "latent_parameters", "float32", dims(moments));
  } else {
    // Older exports return a latent; this one returns the posterior's mean (its mode) to stay deterministic.
    const mean = g.scoped("latent_dist", () => g.op("Slice", [x, g.int64([0]), g.int64([lc]), g.int64([1])]));
    g.output(mean, "latent_sample", "float32", dims(lc));
  }
  return g.toModel("dmesh tiny AutoencoderKL encoder (structured seeded weights)");
}
