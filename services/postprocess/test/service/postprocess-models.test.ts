import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import {
  PostprocessService,
  SafetyPolicy,
  UpscaleKernel,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { createGrpcTransport, createLogger, loadConfig, type RunningService } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postprocessSettings } from "../../src/config.js";
import { startPostprocess } from "../../src/server.js";
import { type ModelDirs, writeModelDirs } from "../support/model-dirs.js";

let dirs: ModelDirs;
let service: RunningService;
let transport: ReturnType<typeof createGrpcTransport>;
let client: ReturnType<typeof createClient<typeof PostprocessService>>;

beforeAll(async () => {
  dirs = await writeModelDirs();
  mkdirSync(join(dirs.upscaleRoot, "broken"));
  writeFileSync(join(dirs.upscaleRoot, "broken", "model.onnx"), "not a model");
  const config = loadConfig(
    postprocessSettings,
    {
      PORT: "0",
      UPSCALE_MODELS_DIR: dirs.upscaleRoot,
      UPSCALE_TILE_SIZE: "64",
      SAFETY_MODEL_DIR: dirs.safetyDir,
      // Threshold 0 flags every image, so that each policy's action shows.
      SAFETY_THRESHOLD: "0",
      SAFETY_POLICY: "pass,strict=reject,soft=blur,audit=flag",
    },
    [],
  );
  service = await startPostprocess(config, createLogger("postprocess", "silent"));
  transport = createGrpcTransport({ address: service.address });
  client = createClient(PostprocessService, transport);
});
afterAll(async () => {
  transport?.close();
  await service?.close();
  dirs?.remove();
});

/** Texture and edges everywhere: something for a super-resolution net to work on. */
function scene(width: number, height: number) {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const check = (Math.floor(x / 11) + Math.floor(y / 13)) % 2 === 0;
      data.set(
        [check ? 220 : (x * 255) / width, (y * 255) / height, x > width / 2 ? 200 : 40],
        (y * width + x) * 3,
      );
    }
  }
  return { encoding: ImageEncoding.RAW, data, width, height, channels: 3 };
}

const PARAMETERS = {
  prompt: "a lighthouse",
  steps: 20,
  sampler: "Euler a",
  cfgScale: 7,
  seed: 42n,
  width: 96,
  height: 64,
};

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  return ConnectError.from(
    await call.then(
      () => new Error("the call succeeded"),
      (e: unknown) => e,
    ),
  );
}

describe("model super-resolution over gRPC", () => {
  it("upscales with a model named in the request, tile by tile, at its scale or the factor asked", async () => {
    const image = scene(150, 100);
    const model = await client.upscale({
      image,
      upscale: { kernel: UpscaleKernel.MODEL, model: "tiny-x2", factor: 0 },
    });
    expect([model.image?.width, model.image?.height, model.image?.data.length]).toEqual([
      300,
      200,
      300 * 200 * 3,
    ]);
    const lanczos = await client.upscale({ image, upscale: { kernel: UpscaleKernel.LANCZOS3, factor: 2 } });
    // The tiny net adds seeded detail to a bilinear upscale: near lanczos, never equal to it.
    let total = 0;
    const a = model.image?.data ?? new Uint8Array();
    const b = lanczos.image?.data ?? new Uint8Array();
    for (let i = 0; i < a.length; i++) total += Math.abs((a[i] as number) - (b[i] as number));
    const mean = total / a.length;
    expect(mean).toBeGreaterThan(0.5);
    expect(mean).toBeLessThan(25);
    const x4 = await client.upscale({
      image,
      upscale: { kernel: UpscaleKernel.MODEL, model: "tiny-x2", factor: 4 },
    });
    expect([x4.image?.width, x4.image?.height]).toEqual([600, 400]);
  });

  it("says which model or field is wrong, with the right code, and keeps serving", async () => {
    const image = scene(16, 16);
    const cases = [
      [
        "missing",
        Code.NotFound,
        "upscale.model",
        'no model "missing" on this service (it has broken, tiny-x2, tiny-x4)',
      ],
      ["../safety", Code.InvalidArgument, "upscale.model", "must name a model directory"],
      ["", Code.InvalidArgument, "upscale.model", "is required with the model kernel"],
      ["broken", Code.FailedPrecondition, undefined, 'model "broken":'],
    ] as const;
    for (const [model, code, field, message] of cases) {
      const err = await failure(
        client.upscale({ image, upscale: { kernel: UpscaleKernel.MODEL, model, factor: 2 } }),
      );
      expect([err.code, err.metadata.get("dmesh-field") ?? undefined], model).toEqual([code, field]);
      expect(err.rawMessage).toContain(message);
    }
    const ok = await client.upscale({ image, upscale: { kernel: UpscaleKernel.MODEL, model: "tiny-x4" } });
    expect(ok.image?.width).toBe(64);
  });

  it("stops a cancelled upscale and stays available", async () => {
    const abort = new AbortController();
    const call = client.upscale(
      { image: scene(1024, 1024), upscale: { kernel: UpscaleKernel.MODEL, model: "tiny-x4", factor: 4 } },
      { signal: abort.signal },
    );
    setTimeout(() => abort.abort(), 150);
    expect((await failure(call)).code).toBe(Code.Canceled);
    const ok = await client.upscale({
      image: scene(32, 32),
      upscale: { kernel: UpscaleKernel.MODEL, model: "tiny-x2" },
    });
    expect(ok.image?.width).toBe(64);
  });
});

describe("the safety stage over gRPC", () => {
  const process = (tenant: string, safety = SafetyPolicy.UNSPECIFIED) =>
    client.process({
      image: scene(96, 64),
      parameters: PARAMETERS,
      safety,
      tenant,
      encode: { encoding: ImageEncoding.PNG, embedMetadata: true },
    });

  it("flags by the tenant's default policy and records the verdict in the PNG's infotext", async () => {
    const res = await process("audit");
    expect(res.safety).toMatchObject({
      policy: SafetyPolicy.FLAG,
      flagged: true,
      action: "flagged",
      classifier: "safety",
      threshold: 0,
    });
    const score = res.safety?.score ?? -1;
    expect(score > 0 && score < 1).toBe(true);
    const read = await client.readMetadata({ image: res.image });
    expect(read.infotext).toBe(
      `a lighthouse\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 96x64, Safety: flagged ${score.toFixed(2)}, Safety model: safety`,
    );
    expect(read.parameters?.extra).toEqual({
      Safety: `flagged ${score.toFixed(2)}`,
      "Safety model": "safety",
    });
  });

  it("rejects with FAILED_PRECONDITION naming the image, blurs, and lets a request's own policy win", async () => {
    const rejected = await failure(process("strict"));
    expect([rejected.code, rejected.metadata.get("dmesh-field")]).toEqual([Code.FailedPrecondition, "image"]);
    expect(rejected.rawMessage).toMatch(
      /^image: rejected by the safety policy: classifier "safety" scored it 0\.\d+ unsafe \(threshold 0\)$/,
    );

    const passed = await process("strict", SafetyPolicy.PASS);
    expect([passed.safety?.action, passed.safety?.flagged]).toEqual(["passed", true]);
    const blurred = await process("soft");
    expect(blurred.safety?.action).toBe("blurred");
    expect(Buffer.from(blurred.image?.data ?? []).equals(Buffer.from(passed.image?.data ?? []))).toBe(false);
    expect((await client.readMetadata({ image: blurred.image })).infotext).toContain("Safety: blurred ");
    const fallback = await process("someone-else");
    expect(fallback.safety?.policy).toBe(SafetyPolicy.PASS);
  });

  it("CheckSafety reports a rejection instead of failing, and returns the blurred pixels", async () => {
    const rejected = await client.checkSafety({ image: scene(64, 64), policy: SafetyPolicy.REJECT });
    expect([rejected.result?.action, rejected.image]).toEqual(["rejected", undefined]);
    const blurred = await client.checkSafety({ image: scene(64, 64), tenant: "soft" });
    expect(blurred.result?.action).toBe("blurred");
    expect([blurred.image?.width, blurred.image?.data.length]).toEqual([64, 64 * 64 * 3]);
  });

  const exiftool = (() => {
    try {
      return execFileSync("which", ["exiftool"], { encoding: "utf8" }).trim() || undefined;
    } catch {
      return undefined;
    }
  })();
  it.skipIf(!exiftool)(
    `exiftool reads the parameters and the safety record from the PNG${exiftool ? "" : " (skipped: exiftool is not installed)"}`,
    async () => {
      const res = await process("audit");
      const dir = mkdtempSync(join(tmpdir(), "dmesh-exiftool-"));
      try {
        const file = join(dir, "image.png");
        writeFileSync(file, res.image?.data ?? new Uint8Array());
        const printed = execFileSync(exiftool as string, ["-b", "-Parameters", file], { encoding: "utf8" });
        expect(printed).toBe((await client.readMetadata({ image: res.image })).infotext);
        expect(printed).toContain(", Safety: flagged 0.");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
