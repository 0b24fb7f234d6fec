import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { MeshService } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { authInterceptor } from "./api-key.js";

// The orchestrator that served this page is the API: its base URL is the page's own directory. Binary
// protobuf, since images travel in these messages.
const transport = createConnectTransport({
  baseUrl: new URL(".", document.baseURI).href.replace(/\/$/, ""),
  useBinaryFormat: true,
  interceptors: [authInterceptor],
});

/** Typed clients of the orchestrator's public services, generated from proto/. */
export const api = {
  processing: createClient(ProcessingService, transport),
  mesh: createClient(MeshService, transport),
  artifacts: createClient(ArtifactService, transport),
  /** Read-only here: models, LoRAs, embeddings and ControlNets the mesh has. */
  models: createClient(ModelService, transport),
  /** PreprocessControl only: a ControlNet unit's control map, previewed. */
  conditioning: createClient(ConditioningService, transport),
};
