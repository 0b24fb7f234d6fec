import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { SchedulerService } from "@dmesh/contracts/dmesh/scheduler/v1/scheduler_pb.js";
import type { ServiceRegistration } from "@dmesh/runtime";
import type { ConditioningHandler } from "./conditioning-handler.js";
import type { InferenceHandler } from "./inference-handler.js";
import type { ModelHandler } from "./model-handler.js";
import type { SchedulerHandler } from "./scheduler-handler.js";

/** The inference process's one registration point: four domain services in one pod. */
export function routes(handlers: {
  inference: InferenceHandler;
  models: ModelHandler;
  conditioning: ConditioningHandler;
  schedulers: SchedulerHandler;
}): ServiceRegistration[] {
  return [
    { service: InferenceService, impl: handlers.inference },
    { service: ModelService, impl: handlers.models },
    { service: ConditioningService, impl: handlers.conditioning },
    { service: SchedulerService, impl: handlers.schedulers },
  ];
}
