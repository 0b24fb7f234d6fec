import { ModelContractError } from "@dmesh/onnx";
import {
  ConfigError,
  type ConfigOf,
  type Logger,
  listenOptions,
  type RunningService,
  startGrpcService,
} from "@dmesh/runtime";
import type { postprocessSettings } from "./config.js";
import { resolveImageLimits } from "./limits/image-limits.js";
import { PixelBudget } from "./limits/pixel-budget.js";
import { PostprocessHandler } from "./postprocess-handler.js";
import { gaugePixelBudget } from "./postprocess-metrics.js";
import { Postprocessor } from "./process/postprocessor.js";
import { routes } from "./routes.js";
import { loadSafetyClassifier, type SafetyClassifier } from "./safety/safety-classifier.js";
import { parseSafetyPolicyTable, policiesOf } from "./safety/safety-policy.js";
import { SafetyStage } from "./safety/safety-stage.js";
import { SharedMemoryIo } from "./shared-memory/shared-memory-io.js";
import { SharedMemoryRegions } from "./shared-memory/shared-memory-regions.js";
import { ModelUpscaler } from "./upscale/model-upscaler.js";

export type PostprocessConfig = ConfigOf<typeof postprocessSettings>;

/**
 * Starts the postprocess service. The safety classifier, when configured, is loaded (and checked against
 * its contract) before the service listens, so a bad model stops it at once; upscale models load on first
 * use. Ready once listening.
 */
export async function startPostprocess(config: PostprocessConfig, logger: Logger): Promise<RunningService> {
  const sharedMemory = await openSharedMemory(config.sharedMemoryDir);
  const safety = await createSafetyStage(config, logger);
  const upscaler = config.upscaleModelsDir
    ? new ModelUpscaler({
        modelsDir: config.upscaleModelsDir,
        cacheSize: config.upscaleModelCache,
        tileSize: config.upscaleTileSize,
        tileOverlap: config.upscaleTileOverlap,
        intraOpThreads: config.intraOpThreads,
        thread: config.ortThreads ? "worker" : "main",
      })
    : undefined;
  const budget = new PixelBudget(config.pixelBudget);
  gaugePixelBudget(budget);
  const postprocessor = new Postprocessor({
    limits: resolveImageLimits({ maxPixels: config.maxInputPixels, maxBytes: config.maxInputBytes }),
    maxOutputPixels: config.maxOutputPixels,
    budget,
    safety,
    ...(upscaler ? { upscaler } : {}),
  });
  const service = await startGrpcService({
    name: "postprocess",
    ...listenOptions(config),
    logger,
    registrations: routes(
      new PostprocessHandler(
        postprocessor,
        config.maxMessageBytes,
        new SharedMemoryIo(postprocessor, sharedMemory),
      ),
    ),
  });
  service.health.setReady(true);
  return {
    ...service,
    close: async () => {
      await service.close();
      await Promise.all([upscaler?.close(), safety.release()]);
    },
  };
}

async function openSharedMemory(dir: string): Promise<SharedMemoryRegions> {
  try {
    return await SharedMemoryRegions.open(dir);
  } catch (error) {
    throw new ConfigError([`SHARED_MEMORY_DIR: ${error instanceof Error ? error.message : String(error)}`]);
  }
}

async function createSafetyStage(config: PostprocessConfig, logger: Logger): Promise<SafetyStage> {
  const policies = parseSafetyPolicyTable(config.safetyPolicy);
  let classifier: SafetyClassifier | undefined;
  if (config.safetyModelDir) {
    try {
      classifier = await loadSafetyClassifier(config.safetyModelDir, {
        unsafeLabels: config.safetyUnsafeLabels
          .split(",")
          .map((l) => l.trim())
          .filter(Boolean),
        intraOpThreads: config.intraOpThreads,
        thread: config.ortThreads ? "worker" : "main",
      });
    } catch (error) {
      if (!(error instanceof ModelContractError)) throw error;
      throw new ConfigError([`SAFETY_MODEL_DIR: ${error.message}`]);
    }
    logger.info(
      { classifier: classifier.name, labels: classifier.labels, unsafe: classifier.unsafeLabels },
      "safety classifier loaded",
    );
  } else {
    const needing = [...policiesOf(policies)].filter((p) => p !== "pass");
    if (needing.length > 0) {
      throw new ConfigError([
        `SAFETY_POLICY: ${needing.join(", ")} needs a classifier; set SAFETY_MODEL_DIR`,
      ]);
    }
  }
  return new SafetyStage({ classifier, policies, threshold: config.safetyThreshold });
}
