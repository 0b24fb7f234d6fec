import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SessionSettings } from "@dmesh/onnx";
import type { ConfigOf, Logger, RunningService } from "@dmesh/runtime";
import { ClientTls, listenOptions, startGrpcService } from "@dmesh/runtime";
import { AdapterDirectory } from "./adapters/adapter-directory.js";
import { AdapterCatalog } from "./adapters/index.js";
import { createDeviceMemoryReader } from "./clients/device-memory.js";
import { resolveProviderChain } from "./clients/provider-chain.js";
import { ConditioningHandler } from "./conditioning-handler.js";
import type { inferenceSettings } from "./config.js";
import { ControlMapper } from "./control/control-mapper.js";
import { ControlNetRegistry } from "./control/control-net-registry.js";
import { InferenceHandler } from "./inference-handler.js";
import { gaugeInferenceFrom } from "./inference-metrics.js";
import { ModelHandler } from "./model-handler.js";
import { ModelRegistry } from "./models/model-registry.js";
import { GenerationQueue } from "./pipeline/generation-queue.js";
import { createPipelineResources } from "./pipeline/pipeline-resources.js";
import { providerSetup } from "./provider-options.js";
import { routes } from "./routes.js";
import { SchedulerHandler } from "./scheduler-handler.js";
import { VaeRegistry } from "./vae/vae-registry.js";

export type InferenceConfig = ConfigOf<typeof inferenceSettings>;

/**
 * Starts the inference process. It turns ready once its default model is loaded (or at once when there is
 * nothing to preload), so that Kubernetes sends no request before a model can serve it.
 */
export async function startInference(config: InferenceConfig, logger: Logger): Promise<RunningService> {
  const sessionSettings: { -readonly [K in keyof SessionSettings]: SessionSettings[K] } = {
    executionProviders: config.executionProviders,
    intraOpThreads: config.intraOpThreads,
    graphOptimization: config.graphOptimization,
    memoryArena: config.memoryArena,
    thread: config.ortThreads ? ("worker" as const) : ("main" as const),
  };
  const models = new ModelRegistry(
    config.modelsDir,
    config.defaultModel,
    sessionSettings,
    config.maxLoadedModels,
    logger,
  );
  // Settled before anything loads: the registry reads the chain at each load.
  const defaultDir = models.defaultId ? models.info(models.defaultId).dir : undefined;
  // TLS (TLS_CA_FILE) for the calls to the device service.
  const deviceTls = config.deviceUrl ? ClientTls.from(config, logger) : undefined;
  const resolved = await resolveProviderChain(
    { ...config, deviceTls },
    {
      bytes: Object.values(defaultDir?.fileBytes ?? {}).reduce((n: number, b) => n + (b ?? 0), 0),
      width: defaultDir?.nativeSize ?? 1024,
      height: defaultDir?.nativeSize ?? 1024,
    },
    logger,
  );
  sessionSettings.executionProviders = resolved.chain;
  // Provider options that cannot take effect stop the start here, naming their variables.
  const providers = providerSetup(resolved.chain, config, resolved.device);
  if (providers.deviceId !== undefined) sessionSettings.deviceId = providers.deviceId;
  logger.info({ chain: resolved.chain, options: providers.applied }, "execution provider options");
  const deviceMemory = config.deviceUrl
    ? createDeviceMemoryReader(config.deviceUrl, sessionSettings.executionProviders, logger, 1000, deviceTls)
    : undefined;
  const queue = new GenerationQueue(config.maxConcurrent, config.maxQueued);
  gaugeInferenceFrom({
    queued: () => queue.queued,
    running: () => queue.running,
    modelsLoaded: () => models.loadedIds().length,
  });
  const control = new ControlMapper();
  const vaes = new VaeRegistry(config.modelsDir, () => sessionSettings, config.maxLoadedModels, logger);
  // What ListAdapters shows: the directories the pipeline reads adapters from.
  const dirs = {
    loras: config.lorasDir || join(config.modelsDir, "loras"),
    embeddings: config.embeddingsDir || join(config.modelsDir, "embeddings"),
    controlnets: config.controlNetDir || join(config.modelsDir, "controlnet"),
  };
  const adapters = new AdapterCatalog(dirs, logger);
  const controlNets = new ControlNetRegistry(
    dirs.controlnets,
    sessionSettings,
    config.maxLoadedModels,
    logger,
  );
  const service = await startGrpcService({
    name: "inference",
    ...listenOptions(config),
    logger,
    registrations: routes({
      inference: new InferenceHandler(
        models,
        queue,
        createPipelineResources({ registry: controlNets, mapper: control }),
        config.maxUnetBatch,
        logger,
        deviceMemory,
        {
          registry: vaes,
          tiling: { tileAbovePixels: config.vaeTileAbove, tileSize: config.vaeTileSize },
        },
        {
          directory: new AdapterDirectory(dirs.loras, dirs.embeddings),
          cacheDir: join(tmpdir(), "dmesh-adapters"),
        },
      ),
      models: new ModelHandler(models, adapters),
      conditioning: new ConditioningHandler(models, control),
      schedulers: new SchedulerHandler(models),
    }),
  });
  const defaultId = models.defaultId;
  if (config.preloadDefaultModel && defaultId) {
    models.load(defaultId).then(
      () => service.health.setReady(true),
      (err: Error) =>
        logger.error({ model: defaultId, err: err.message }, "default model failed to load; not ready"),
    );
  } else {
    if (!defaultId)
      logger.warn({ modelsDir: config.modelsDir }, "no model found; requests will get NOT_FOUND");
    service.health.setReady(true);
  }
  return {
    ...service,
    close: async () => {
      await service.close();
      deviceMemory?.close();
      deviceTls?.close();
      await control.close();
      await controlNets.close();
      await vaes.close();
      await models.close();
    },
  };
}
