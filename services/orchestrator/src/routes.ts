import type { ConnectRouter } from "@connectrpc/connect";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { MeshService } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { Health } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { createHealthService, createReflectionServices, type HealthRegistry } from "@dmesh/runtime";
import type { ArtifactHandler } from "./artifact-handler.js";
import type { MeshHandler } from "./mesh-handler.js";
import type { ProcessingHandler } from "./processing-handler.js";
import type { PublicConditioningHandler } from "./public-conditioning-handler.js";
import type { PublicModelHandler } from "./public-model-handler.js";

export const PUBLIC_SERVICES = [
  ProcessingService,
  MeshService,
  ArtifactService,
  ModelService,
  ConditioningService,
];

/** The orchestrator's one registration point. */
export function routes(
  handlers: {
    processing: ProcessingHandler;
    mesh: MeshHandler;
    artifacts: ArtifactHandler;
    models: PublicModelHandler;
    conditioning: PublicConditioningHandler;
  },
  health: HealthRegistry,
) {
  return (router: ConnectRouter) => {
    router.service(ProcessingService, handlers.processing);
    router.service(MeshService, handlers.mesh);
    router.service(ArtifactService, handlers.artifacts);
    // Read-only listings and the control-map preview, forwarded to an inference replica.
    router.service(ModelService, handlers.models);
    router.service(ConditioningService, handlers.conditioning);
    router.service(Health, createHealthService(health));
    for (const { service, impl } of createReflectionServices([...PUBLIC_SERVICES, Health]))
      router.service(service, impl);
  };
}
