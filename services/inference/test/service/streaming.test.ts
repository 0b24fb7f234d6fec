import { SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import {
  type DenoiseCheckpoint,
  DenoisePhase,
  Stage,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Code,
  failure,
  type GenerateEvents,
  generate,
  imagesOf,
  type SpecInit,
  same,
  smallSpec,
} from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

let service: TestInference;

beforeAll(async () => {
  service = await startTestInference(
    { sdxl: {}, refiner: { kind: "sdxl-refiner" } },
    { DEFAULT_MODEL: "sdxl", MAX_UNET_BATCH: "2" },
  );
});
afterAll(async () => {
  await service?.close();
});

const denoising = (events: GenerateEvents) => events.progress.filter((p) => p.stage === Stage.DENOISING);

describe("progress", () => {
  it("reports every stage and every step, with an ETA learned from the steps already measured", async () => {
    const spec = smallSpec({ scheduler: { steps: 6 } });
    const first = await generate(service, { spec });
    const second = await generate(service, { spec });
    const stages = [...new Set(second.progress.map((p) => p.stage))];
    expect(stages).toEqual([Stage.LOADING_MODEL, Stage.ENCODING_PROMPT, Stage.DENOISING, Stage.DECODING]);
    expect(denoising(first).map((p) => [p.step, p.totalSteps])).toEqual(
      [1, 2, 3, 4, 5, 6].map((s) => [s, 6]),
    );
    // The first step of a request already has an estimate, from the previous request's steps.
    const etas = denoising(second).map((p) => p.etaSeconds);
    expect(etas[0]).toBeGreaterThan(0);
    expect(etas.at(-1)).toBe(0);
    expect(second.done?.timings?.stepSeconds).toHaveLength(6);
    expect(second.done?.timings?.onnxSeconds).toBeGreaterThan(0);
  });

  it("sends a latent preview every N steps, at latent resolution", async () => {
    const events = await generate(service, {
      spec: smallSpec({ scheduler: { steps: 6 }, preview: { intervalSteps: 2 } }),
    });
    const previews = denoising(events).filter((p) => p.preview);
    expect(previews.map((p) => p.step)).toEqual([2, 4, 6]);
    for (const p of previews)
      expect([p.preview?.width, p.preview?.height, p.preview?.data.length]).toEqual([8, 8, 8 * 8 * 3]);
  });
});

describe("cancel", () => {
  it("stops within one step of the client's abort, and the service serves the next request", async () => {
    const abort = new AbortController();
    const total = 60;
    let seen = 0;
    const call = generate(
      service,
      { spec: smallSpec({ size: { width: 256, height: 256 }, scheduler: { steps: total } }) },
      {
        signal: abort.signal,
        onProgress: (p) => {
          if (p.stage !== Stage.DENOISING) return;
          seen = p.step;
          if (p.step === 3) abort.abort();
        },
      },
    );
    await expect(call).rejects.toThrow();
    const line = await waitFor(() => service.logs.find((l) => l.msg === "generation cancelled"));
    const { stepsAtAbort, stepsDone } = line as unknown as { stepsAtAbort: number; stepsDone: number };
    // The UNet run in flight when the abort arrived may finish; no further step starts.
    expect(stepsAtAbort).toBeGreaterThanOrEqual(seen);
    expect(stepsDone - stepsAtAbort).toBeLessThanOrEqual(1);
    expect(stepsDone).toBeLessThan(total);
    expect((await service.inference.getQueue({})).running).toBe(0);
    expect((await generate(service, { spec: smallSpec() })).images).toHaveLength(1);
  });
});

describe("pause and resume", () => {
  /** Runs `spec`, pausing once `when` says so, then resumes from the checkpoint it emitted. */
  async function pauseAndResume(
    spec: SpecInit,
    id: string,
    when: (p: GenerateEvents["progress"][number]) => boolean,
  ) {
    let asked = false;
    const paused = await generate(
      service,
      { generationId: id, spec },
      {
        onProgress: (p) => {
          if (asked || p.stage !== Stage.DENOISING || !when(p)) return;
          asked = true;
          void service.inference.pauseGeneration({ generationId: id });
        },
      },
    );
    expect(paused.done?.paused).toBe(true);
    expect(paused.checkpoints).toHaveLength(1);
    const checkpoint = paused.checkpoints[0] as DenoiseCheckpoint;
    expect(checkpoint.step).toBeLessThan(checkpoint.totalSteps);
    const resumed = await generate(service, { generationId: id, spec, resumeFrom: checkpoint });
    expect(resumed.done?.paused).toBe(false);
    return { checkpoint, paused, resumed };
  }

  it.each([
    ["Euler", SchedulerKind.EULER],
    ["Euler a (stochastic)", SchedulerKind.EULER_ANCESTRAL],
    ["DPM++ 2M (multistep history)", SchedulerKind.DPMPP_2M],
    ["UniPC (predictor-corrector history)", SchedulerKind.UNIPC],
    ["DPM2 a (step pairs, stochastic)", SchedulerKind.KDPM2_ANCESTRAL],
  ])("%s: resuming from the checkpoint gives the uninterrupted run's bytes", async (_name, kind) => {
    const spec = smallSpec({
      size: { width: 128, height: 128 },
      scheduler: { steps: 40, kind },
      params: { seed: 11n },
    });
    const [whole] = await imagesOf(service, spec);
    const { checkpoint, resumed } = await pauseAndResume(spec, `pause-${kind}`, (p) => p.step === 4);
    expect(checkpoint.phase).toBe(DenoisePhase.BASE);
    expect(denoising(resumed)[0]?.step).toBe(checkpoint.step + 1);
    expect(same(resumed.images[0]?.image?.data, whole)).toBe(true);
  });

  it("a batch paused in the refiner phase resumes there, every image of the request matching the uninterrupted run", async () => {
    const spec = smallSpec({
      size: { width: 128, height: 128 },
      models: { base: "sdxl", refiner: "refiner" },
      scheduler: { steps: 40, kind: SchedulerKind.EULER_ANCESTRAL },
      params: { seed: 5n, denoisingEnd: 0.5 },
      output: { count: 3 },
    });
    const whole = await imagesOf(service, spec);
    // Images 0 and 1 share a UNet batch (MAX_UNET_BATCH=2); image 2 runs after them.
    const { checkpoint, resumed } = await pauseAndResume(
      spec,
      "pause-refiner",
      (p) => p.phase === DenoisePhase.REFINER,
    );
    expect([checkpoint.phase, checkpoint.imageIndex, checkpoint.latents?.shape]).toEqual([
      DenoisePhase.REFINER,
      0,
      [2, 4, 16, 16],
    ]);
    const images = [...resumed.images].sort((a, b) => a.index - b.index);
    expect(images.map((i) => i.index)).toEqual([0, 1, 2]);
    for (const [i, image] of images.entries())
      expect(same(image.image?.data, whole[i]), `image ${i}`).toBe(true);
  });

  it("refuses a checkpoint from another request", async () => {
    const spec = smallSpec({ size: { width: 128, height: 128 }, scheduler: { steps: 40 } });
    const { checkpoint } = await pauseAndResume(spec, "pause-other", (p) => p.step === 2);
    const other = await failure(
      generate(service, { spec: { ...spec, conditioning: { prompt: "another" } }, resumeFrom: checkpoint }),
    );
    expect([other.code, other.field]).toEqual([Code.InvalidArgument, "resume_from.spec_digest"]);
    const seed = await failure(
      generate(service, { spec: { ...spec, params: { seed: 1n } }, resumeFrom: checkpoint }),
    );
    expect([seed.code, seed.field]).toEqual([Code.InvalidArgument, "resume_from.seed"]);
    const tampered = {
      ...checkpoint,
      latents: { ...checkpoint.latents, shape: [1, 4, 8, 8] },
    } as DenoiseCheckpoint;
    const shape = await failure(generate(service, { spec, resumeFrom: tampered }));
    expect([shape.code, shape.field]).toEqual([Code.InvalidArgument, "resume_from.latents"]);
  });
});

async function waitFor<T>(find: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}
