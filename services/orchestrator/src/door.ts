import type { Interceptor } from "@connectrpc/connect";
import { MeshService } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { Health } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { ServerReflection } from "@dmesh/contracts/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "@dmesh/contracts/grpc/reflection/v1alpha/reflection_pb.js";
import {
  ApiKeys,
  ClientTls,
  type ClientTlsConfig,
  createAuthInterceptor,
  isAdminKey,
  type Logger,
} from "@dmesh/runtime";

/** Open to anyone, for probes and discovery. */
const OPEN_SERVICES = [Health.typeName, ServerReflection.typeName, ServerReflectionAlpha.typeName];
/** Mesh-wide operations (cleanup, workflow definitions, which every tenant runs): an admin key only. */
const ADMIN_METHODS = [
  `${MeshService.typeName}/${MeshService.method.cleanup.name}`,
  ...[
    ProcessingService.method.createWorkflow,
    ProcessingService.method.updateWorkflow,
    ProcessingService.method.deleteWorkflow,
  ].map((m) => `${ProcessingService.typeName}/${m.name}`),
];

export interface Door {
  /** Who calls (API keys), and whether they may. */
  readonly auth: Interceptor;
  /** Whether a `/metrics` scrape of the public port may read it: anyone with the door open, else admin keys. */
  mayScrape(authorization: string | undefined): boolean;
  /** TLS of the calls to domain services, when TLS_CA_FILE is set. */
  readonly clientTls: ClientTls | undefined;
  close(): void;
}

/**
 * The orchestrator's guards as its settings ask: API keys (or, without API_KEYS_FILE, the open door of one
 * default tenant, said in the log) and TLS for the hops to the domain services.
 */
export function openDoor(config: { apiKeysFile: string } & ClientTlsConfig, logger: Logger): Door {
  const keys = config.apiKeysFile ? new ApiKeys(config.apiKeysFile, logger) : undefined;
  if (!keys) logger.warn({}, "no API_KEYS_FILE: the door is open, every caller is the default tenant");
  const clientTls = ClientTls.from(config, logger);
  return {
    auth: createAuthInterceptor({ keys, openServices: OPEN_SERVICES, adminMethods: ADMIN_METHODS }),
    mayScrape: (authorization) => !keys || isAdminKey(keys, authorization),
    clientTls,
    close() {
      keys?.close();
      clientTls?.close();
    },
  };
}
