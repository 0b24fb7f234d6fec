import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSessionSettings, RunClock } from "@dmesh/onnx";
import { writeTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LoadedModel, loadModel } from "../../src/models/loaded-model.js";
import { readModelDirectory } from "../../src/models/pipeline-directory.js";
import { BufferPool } from "../../src/pipeline/buffer-pool.js";
import { decodeLatents, encodeImage } from "../../src/pipeline/vae.js";
import { createGenerator } from "../../src/random/index.js";
import { blendHorizontal, blendVertical, type Planes, runTiled } from "../../src/vae/tiled-vae.js";
import { estimateVaeDecodeBytes, planVaeTiling } from "../../src/vae/vae-tiling.js";

// Tiled VAE decode and encode (diffusers' enable_vae_tiling) on the tiny model's real ONNX VAE: the tiles'
// seams are blended away, so a tiled image stays within 2 levels of the untiled one.
let dir: string;
let model: LoadedModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dmesh-tiled-vae-"));
  await writeTinyModel(join(dir, "tiny"), {});
  model = await loadModel(readModelDirectory("tiny", join(dir, "tiny")), cpuSessionSettings(1));
});
afterAll(async () => {
  await model?.release();
  await rm(dir, { recursive: true, force: true });
});

/** Latents as a denoising loop leaves them: smooth shapes, some grain, a standard deviation about 0.55. */
function latentsFor(height: number, width: number): Float32Array {
  const h = height / 8;
  const w = width / 8;
  const noise = createGenerator(5).randn(4 * h * w);
  return noise.map((n, i) => {
    const c = Math.floor(i / (h * w));
    const y = Math.floor((i % (h * w)) / w);
    const x = i % w;
    return 0.5 * (Math.sin((x + 3 * c) / 3) + Math.cos((y - c) / 4)) + 0.2 * n;
  });
}

/** A smooth test picture, NCHW in [-1, 1]. */
function picture(height: number, width: number): Float32Array {
  return Float32Array.from({ length: 3 * height * width }, (_, i) => {
    const p = i % (height * width);
    const c = Math.floor(i / (height * width));
    return 0.8 * Math.sin(((p % width) + c * 7) / 11) * Math.cos(Math.floor(p / width) / 9);
  });
}

const maxDifference = (a: Uint8Array, b: Uint8Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] ?? 0))), 0);

// The tiny VAE's sample_size is 256: diffusers' tile. Much smaller tiles blend over fewer pixels than the
// decoder's border effects reach (64-pixel tiles: up to 16 levels apart), which VAE_TILE_SIZE's README says.
describe("tiled decode", () => {
  it.each([
    [512, 384, 256],
    [640, 512, 256],
  ])(
    "a %dx%d image in %d-pixel tiles is within 2 levels of the untiled decode, and not the same bytes",
    async (width, height, tile) => {
      const latents = latentsFor(height, width);
      const clock = new RunClock();
      const buffers = new BufferPool();
      const whole = await decodeLatents(model.vae, latents, height, width, clock, buffers);
      const callsBefore = clock.calls;
      const tiled = await decodeLatents(model.vae, latents, height, width, clock, buffers, {
        sampleTile: tile,
        reason: "size",
      });
      expect(tiled.length).toBe(whole.length);
      expect(clock.calls - callsBefore).toBeGreaterThan(3);
      expect(maxDifference(tiled, whole)).toBeLessThanOrEqual(2);
      expect(maxDifference(tiled, whole)).toBeGreaterThan(0);
    },
  );
});

describe("tiled encode", () => {
  it("a 512x384 picture encoded in 256-pixel tiles decodes within 2 levels of its untiled encoding", async () => {
    const [height, width] = [384, 512];
    const pixels = picture(height, width);
    const clock = new RunClock();
    const buffers = new BufferPool();
    const whole = await encodeImage(model.vae, pixels, height, width, clock);
    const tiled = await encodeImage(model.vae, pixels, height, width, clock, {
      sampleTile: 256,
      reason: "size",
    });
    expect(tiled.mean.length).toBe(whole.mean.length);
    expect(tiled.logvar?.length).toBe(whole.logvar?.length);
    expect(tiled.mean.some((v, i) => v !== whole.mean[i])).toBe(true);
    const scale = model.vae.scalingFactor;
    const decode = (mean: Float32Array) =>
      decodeLatents(
        model.vae,
        mean.map((v) => v * scale),
        height,
        width,
        clock,
        buffers,
      );
    expect(maxDifference(await decode(tiled.mean), await decode(whole.mean))).toBeLessThanOrEqual(2);
  });
});

describe("diffusers' blend and tile loop", () => {
  const planes = (h: number, w: number, f: (y: number, x: number) => number): Planes => ({
    data: Float32Array.from({ length: h * w }, (_, i) => f(Math.floor(i / w), i % w)),
    channels: 1,
    height: h,
    width: w,
  });

  it("blend_v ramps b's first rows from a's last ones: b[y] = a[-e + y](1 - y/e) + b[y](y/e)", () => {
    const a = planes(4, 2, () => 10);
    const b = planes(4, 2, () => 2);
    blendVertical(a, b, 4);
    expect(Array.from(b.data)).toEqual([10, 10, 8, 8, 6, 6, 4, 4]);
    const c = planes(2, 4, () => 2);
    blendHorizontal(
      planes(2, 4, () => 10),
      c,
      2,
    );
    expect(Array.from(c.data)).toEqual([10, 6, 2, 2, 10, 6, 2, 2]);
  });

  it("an identity model through the loop gives back its input, with the sizes diffusers' concatenation gives", async () => {
    const input = planes(50, 33, (y, x) => y * 100 + x);
    const out = await runTiled(input, 32, 32, async (tile) => tile);
    expect([out.height, out.width]).toEqual([50, 33]);
    out.data.forEach((v, i) => {
      expect(v).toBeCloseTo(input.data[i] as number, 3);
    });
  });
});

describe("when the VAE tiles", () => {
  const settings = { tileAbovePixels: 1536 * 1536, tileSize: 0 };
  it("above VAE_TILE_ABOVE pixels, or when free device memory is short of an untiled decode; never within one tile", () => {
    const sdxl = { sampleSize: 1024 };
    expect(planVaeTiling(2048, 2048, sdxl, settings)).toEqual({ sampleTile: 1024, reason: "size" });
    expect(planVaeTiling(1024, 1024, sdxl, settings)).toBeUndefined();
    expect(planVaeTiling(1536, 1024, sdxl, settings, BigInt(estimateVaeDecodeBytes(1536, 1024) - 1))).toEqual(
      {
        sampleTile: 1024,
        reason: "memory",
      },
    );
    expect(
      planVaeTiling(1536, 1024, sdxl, settings, BigInt(estimateVaeDecodeBytes(1536, 1024))),
    ).toBeUndefined();
    expect(planVaeTiling(1024, 1024, sdxl, { tileAbovePixels: 1, tileSize: 0 }, 0n)).toBeUndefined();
    expect(planVaeTiling(768, 512, { sampleSize: 512 }, { tileAbovePixels: 1, tileSize: 256 })).toEqual({
      sampleTile: 256,
      reason: "size",
    });
  });
});
