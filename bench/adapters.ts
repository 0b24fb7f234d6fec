import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { type GenerationSpecSchema, SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { writeTinyEmbedding, writeTinyLora, writeTinyModel } from "@dmesh/tiny-model";
import { type BenchResult, versus } from "./bench-result.js";
import { startInferenceProcess } from "./inference-pipeline.js";
import { median, pairedRatio } from "./measure.js";

type Spec = MessageInitShape<typeof GenerationSpecSchema>;

const spec = (prompt: string, size = 128, steps = 20): Spec => ({
  conditioning: { prompt, negativePrompt: "blurry" },
  size: { width: size, height: size },
  scheduler: { kind: SchedulerKind.EULER, steps },
  params: { seed: 42n },
});

const ms = (started: number) => performance.now() - started;

/**
 * Adapters in the inference service's own process (tiny SDXL, real sessions): (a) the first use of an
 * adapter set (the merge and its sessions' build, as the first request with the set pays it minus what
 * the same request costs once the set is cached), for the very first set (the base's ONNX files parsed
 * and read) and for further sets, against loading the base model (LoadModel); (b) a generation with a
 * cached set (two LoRAs and an embedding) against a plain one, paired round by round (target ≤ 1.02×);
 * (c) resident memory per cached set.
 */
export async function benchAdapters(): Promise<BenchResult[]> {
  const root = mkdtempSync(join(tmpdir(), "dmesh-bench-adapters-"));
  try {
    const models = join(root, "models");
    await writeTinyModel(join(models, "tiny-sdxl"));
    await writeTinyModel(join(models, "tiny-other"), { seed: 3 });
    mkdirSync(join(models, "loras"));
    mkdirSync(join(models, "embeddings"));
    await writeTinyLora(join(models, "loras", "ink.safetensors"), { layout: "kohya-sdxl" });
    await writeTinyLora(join(models, "loras", "peft_ink.safetensors"), { layout: "peft", seed: 9 });
    await writeTinyEmbedding(join(models, "embeddings", "shiny.safetensors"));
    const service = await startInferenceProcess(root, {
      DEFAULT_MODEL: "tiny-sdxl",
      MAX_LOADED_MODELS: "64",
      INTRA_OP_THREADS: "1",
    });
    const transport = createGrpcTransport({ address: service.address });
    const results: BenchResult[] = [];
    try {
      const modelService = createClient(ModelService, transport);
      const timed = async (request: Spec) => {
        const started = performance.now();
        await service.generate(request);
        return ms(started);
      };
      const small = (prompt: string) => spec(prompt, 64, 1);

      // (a) Loading the base: LoadModel of a model of the same size, unloaded between rounds.
      const loads: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        await modelService.loadModel({ id: "tiny-other" });
        loads.push(ms(started));
        await modelService.unloadModel({ id: "tiny-other" });
      }
      const load = { name: "loading the base model (LoadModel)", value: median(loads) };
      // A new set each round: a new weight. Its first request builds it; the same request again reuses it.
      const buildCost = async (weight: number) => {
        const request = small(`a lighthouse <lora:ink:${weight}> <lora:peft_ink:-0.5>`);
        const first = await timed(request);
        const cached = await timed(request);
        return first - cached;
      };
      const rssBefore = service.rssMiB();
      const firstSet = await buildCost(0.25);
      const further: number[] = [];
      const sets = 12;
      for (let i = 1; i < sets; i++) further.push(await buildCost(0.25 + i / 16));
      const rssAfter = service.rssMiB();
      results.push(
        versus(
          "adapters: first use of the first set (parse + read base, merge, sessions)",
          firstSet,
          "ms",
          load,
        ),
        versus("adapters: first use of a further set (merge, sessions)", median(further), "ms", load),
        {
          name: `adapters: resident memory per cached set (${sets} sets of 2 LoRAs, tiny SDXL)`,
          value: (rssAfter - rssBefore) / sets,
          unit: "MiB",
        },
      );

      // (b) A cached set (two LoRAs, one embedding) against the plain model, turn about; the plain prompt has
      // a word of the same token length where the other names the embedding.
      const adapted = spec("a lighthouse on a cliff, shiny <lora:ink:0.8> <lora:peft_ink:-0.5>");
      const bare = spec("a lighthouse on a cliff, shine");
      for (let i = 0; i < 2; i++) {
        await timed(bare);
        await timed(adapted);
      }
      const withSet: number[] = [];
      const without: number[] = [];
      for (let round = 0; round < 16; round++) {
        if (round % 2 === 0) {
          withSet.push(await timed(adapted));
          without.push(await timed(bare));
        } else {
          without.push(await timed(bare));
          withSet.push(await timed(adapted));
        }
      }
      const paired = pairedRatio(withSet, without);
      results.push(
        versus(
          "adapters: generation with a cached set, 2 LoRAs + 1 embedding (128², 20 steps)",
          median(withSet),
          "ms",
          { name: "the plain model", value: median(without) },
          { max: 1.02 },
          paired,
        ),
      );
    } finally {
      transport.close();
      await service.stop();
    }
    return results;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
