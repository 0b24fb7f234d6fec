import type { ControlNetResources } from "../control/request-control-nets.js";
import type { LoadedModel } from "../models/loaded-model.js";
import { BufferPool } from "./buffer-pool.js";
import { EtaEstimator } from "./eta-estimator.js";
import { PromptCache } from "./prompt-cache.js";
import { SchedulerPool } from "./scheduler-pool.js";
import { UnetBatcher } from "./unet-batcher.js";

/**
 * What the pipeline keeps across requests in one process: learned step times, things costly to rebuild, and
 * each loaded model's UNet batcher (which concurrent requests share).
 */
export interface PipelineResources {
  readonly eta: EtaEstimator;
  readonly schedulers: SchedulerPool;
  readonly prompts: PromptCache;
  readonly buffers: BufferPool;
  /** ControlNets and the control-map worker; a process without them refuses ControlNet requests. */
  readonly controlNets?: ControlNetResources;
  batcherFor(model: LoadedModel): UnetBatcher;
}

export function createPipelineResources(controlNets?: ControlNetResources): PipelineResources {
  const buffers = new BufferPool();
  const batchers = new WeakMap<LoadedModel, UnetBatcher>();
  return {
    eta: new EtaEstimator(),
    schedulers: new SchedulerPool(),
    prompts: new PromptCache(),
    buffers,
    ...(controlNets ? { controlNets } : {}),
    batcherFor: (model) => {
      let batcher = batchers.get(model);
      if (!batcher) {
        batcher = new UnetBatcher(model, buffers);
        batchers.set(model, batcher);
      }
      return batcher;
    },
  };
}
