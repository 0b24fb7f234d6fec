import { join } from "node:path";
import { GenerationMode } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { Stage } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { writeTinyVae } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, failure, generate, imagesOf, rawImage, same, smallSpec } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

// VAE options end to end through the inference service (tiny real ONNX models on a loopback server): a separate
// VAE suite named by ModelSuite.vae, checked at load; tiling above VAE_TILE_ABOVE; TAESD previews.
let service: TestInference;

beforeAll(async () => {
  service = await startTestInference(
    // The same weights twice; "previews" also has a TAESD-layout decoder.
    { tiny: { kind: "sdxl" }, previews: { kind: "sdxl", taesd: true } },
    { DEFAULT_MODEL: "tiny", VAE_TILE_ABOVE: String(64 * 64), VAE_TILE_SIZE: "64" },
    async (dir) => {
      await writeTinyVae(join(dir, "sdxl-vae"), { kind: "sdxl", seed: 7 });
      await writeTinyVae(join(dir, "sd15-vae"), { kind: "sd15" });
      await writeTinyVae(join(dir, "wide-vae"), { kind: "sdxl", latentChannels: 16 });
    },
  );
});
afterAll(async () => {
  await service?.close();
});

const spec = (over: Parameters<typeof smallSpec>[0] = {}) =>
  smallSpec({ scheduler: { steps: 3 }, params: { seed: 11n }, ...over });

describe("ModelSuite.vae", () => {
  it("decodes with the named VAE suite: other bytes than the model's own VAE, the same bytes again", async () => {
    const [own] = await imagesOf(service, spec());
    const [suite] = await imagesOf(service, spec({ models: { base: "tiny", vae: "sdxl-vae" } }));
    const [again] = await imagesOf(service, spec({ models: { base: "tiny", vae: "sdxl-vae" } }));
    // A model suite's own VAE can be named too: the same weights as "tiny"'s, so the same image.
    const [borrowed] = await imagesOf(service, spec({ models: { base: "tiny", vae: "previews" } }));
    expect(suite?.length).toBe(64 * 64 * 3);
    expect(same(suite, again)).toBe(true);
    expect(same(suite, own)).toBe(false);
    expect(same(borrowed, own)).toBe(true);
  });

  it("encodes an img2img input with the named suite's encoder", async () => {
    const img2img = (vae: string) =>
      spec({
        mode: GenerationMode.IMG2IMG,
        initImage: rawImage(64, 64),
        params: { seed: 11n, strength: 0.5 },
        models: { base: "tiny", vae },
      });
    const [own] = await imagesOf(service, img2img(""));
    const [suite] = await imagesOf(service, img2img("sdxl-vae"));
    expect(suite?.length).toBe(64 * 64 * 3);
    expect(same(suite, own)).toBe(false);
  });

  it("an unknown VAE is NOT_FOUND naming spec.models.vae, before any work", async () => {
    const seen: Stage[] = [];
    const missing = await failure(
      generate(
        service,
        { spec: spec({ models: { base: "tiny", vae: "no-such-vae" } }) },
        { onProgress: (p) => seen.push(p.stage) },
      ),
    );
    expect([missing.code, missing.field]).toEqual([Code.NotFound, "spec.models.vae"]);
    expect(missing.message).toContain("sdxl-vae");
    expect(seen).toEqual([]);
    const traversal = await failure(
      generate(service, { spec: spec({ models: { base: "tiny", vae: "../tiny" } }) }),
    );
    expect([traversal.code, traversal.field]).toEqual([Code.InvalidArgument, "spec.models.vae"]);
  });

  it("a VAE of another latent space is FAILED_PRECONDITION naming it: other latent channels, another scaling factor", async () => {
    const wide = await failure(
      generate(service, { spec: spec({ models: { base: "tiny", vae: "wide-vae" } }) }),
    );
    expect([wide.code, wide.field]).toEqual([Code.FailedPrecondition, "spec.models.vae"]);
    expect(wide.message).toMatch(/"wide-vae".*latent_sample.*16/);
    const sd15 = await failure(
      generate(service, { spec: spec({ models: { base: "tiny", vae: "sd15-vae" } }) }),
    );
    expect([sd15.code, sd15.field]).toEqual([Code.FailedPrecondition, "spec.models.vae"]);
    expect(sd15.message).toContain('VAE "sd15-vae" has scaling_factor 0.18215 but model "tiny" has 0.13025');
  });
});

describe("VAE tiling", () => {
  it("tiles an image above VAE_TILE_ABOVE pixels, and says so in the log; a smaller one runs whole", async () => {
    const tiled = (line: { msg: string; width?: unknown }) => line.msg === "VAE runs in tiles";
    const before = service.logs.filter(tiled).length;
    const [small] = await imagesOf(service, spec());
    expect(service.logs.filter(tiled).length).toBe(before);
    const [wide] = await imagesOf(service, spec({ size: { width: 128, height: 64 } }));
    expect(small?.length).toBe(64 * 64 * 3);
    expect(wide?.length).toBe(128 * 64 * 3);
    expect(service.logs.filter(tiled).slice(before)).toMatchObject([
      { vae: "tiny", sampleTile: 64, reason: "size" },
    ]);
  });
});

describe("previews", () => {
  const previewsOf = async (base: string) => {
    const events = await generate(service, {
      spec: spec({ models: { base }, scheduler: { steps: 4 }, preview: { intervalSteps: 2 } }),
    });
    return events.progress.filter((p) => p.stage === Stage.DENOISING && p.preview).map((p) => p.preview);
  };

  it("come from the TAESD decoder when the model has one: full size, not the latent approximation", async () => {
    const approximations = await previewsOf("tiny");
    const decoded = await previewsOf("previews");
    expect(approximations.map((p) => [p?.width, p?.height])).toEqual([
      [8, 8],
      [8, 8],
    ]);
    expect(decoded.map((p) => [p?.width, p?.height, p?.data.length])).toEqual([
      [64, 64, 64 * 64 * 3],
      [64, 64, 64 * 64 * 3],
    ]);
    // The same latents (both models have the same weights): the approximation blown up 8x, pixel for pixel,
    // is not what the decoder painted.
    const approximation = approximations[1]?.data as Uint8Array;
    const upscaled = new Uint8Array(64 * 64 * 3).map((_, i) => {
      const p = Math.floor(i / 3);
      return approximation[(Math.floor(p / 64 / 8) * 8 + Math.floor((p % 64) / 8)) * 3 + (i % 3)] as number;
    });
    const decodedLast = decoded[1]?.data as Uint8Array;
    const meanDiff =
      decodedLast.reduce((n, v, i) => n + Math.abs(v - (upscaled[i] as number)), 0) / decodedLast.length;
    expect(meanDiff).toBeGreaterThan(1);
    // The two final images agree: the preview decoder changes previews only.
    const [a] = await imagesOf(service, spec({ models: { base: "tiny" } }));
    const [b] = await imagesOf(service, spec({ models: { base: "previews" } }));
    expect(same(a, b)).toBe(true);
  });
});
