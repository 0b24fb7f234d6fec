import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { MeshService } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";

export interface OrchestratorClients {
  processing: Client<typeof ProcessingService>;
  mesh: Client<typeof MeshService>;
  artifacts: Client<typeof ArtifactService>;
}

export const DEFAULT_URL = "http://127.0.0.1:50051";

/**
 * The CLI talks to the orchestrator's public face the way a gateway would: the Connect protocol (binary)
 * over HTTP/1.1, uncompressed (images do not compress and gzip made large messages several times slower).
 */
export function orchestratorClients(url: string): OrchestratorClients {
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    acceptCompression: [],
    useBinaryFormat: true,
  });
  return {
    processing: createClient(ProcessingService, transport),
    mesh: createClient(MeshService, transport),
    artifacts: createClient(ArtifactService, transport),
  };
}
