import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { MeshService } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";

export interface OrchestratorClients {
  processing: Client<typeof ProcessingService>;
  mesh: Client<typeof MeshService>;
  artifacts: Client<typeof ArtifactService>;
  models: Client<typeof ModelService>;
}

export const DEFAULT_URL = "http://127.0.0.1:50051";

/** `--api-key KEY` of every command that calls the orchestrator; DMESH_API_KEY when not given. */
export const API_KEY_OPTION = { "api-key": { type: "string" } } as const;

/**
 * The CLI talks to the orchestrator's public face the way a gateway would: the Connect protocol (binary)
 * over HTTP/1.1, uncompressed (images do not compress and gzip made large messages several times slower),
 * with the API key as a bearer token when there is one.
 */
export function orchestratorClients(
  url: string,
  apiKey: string | undefined = process.env.DMESH_API_KEY,
): OrchestratorClients {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    acceptCompression: [],
    useBinaryFormat: true,
    interceptors: apiKey ? [bearer] : [],
  });
  return {
    processing: createClient(ProcessingService, transport),
    mesh: createClient(MeshService, transport),
    artifacts: createClient(ArtifactService, transport),
    models: createClient(ModelService, transport),
  };
}
