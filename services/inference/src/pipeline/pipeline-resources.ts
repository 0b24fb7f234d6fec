import { BufferPool } from "./buffer-pool.js";
import { EtaEstimator } from "./eta-estimator.js";
import { PromptCache } from "./prompt-cache.js";
import { SchedulerPool } from "./scheduler-pool.js";

/** What the pipeline keeps across requests in one process: learned step times, and things costly to rebuild. */
export interface PipelineResources {
  readonly eta: EtaEstimator;
  readonly schedulers: SchedulerPool;
  readonly prompts: PromptCache;
  readonly buffers: BufferPool;
}

export function createPipelineResources(): PipelineResources {
  return {
    eta: new EtaEstimator(),
    schedulers: new SchedulerPool(),
    prompts: new PromptCache(),
    buffers: new BufferPool(),
  };
}
