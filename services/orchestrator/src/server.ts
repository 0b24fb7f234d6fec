import { join } from "node:path";
import { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { Health } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import {
  type ConfigOf,
  createServerInterceptor,
  HealthRegistry,
  type Logger,
  type RunningConnectServer,
  startConnectServer,
} from "@dmesh/runtime";
import { ArtifactHandler } from "./artifact-handler.js";
import { BatchManager } from "./batches/batch-manager.js";
import type { orchestratorSettings } from "./config.js";
import { ReplicaPool } from "./mesh/replica-pool.js";
import { MeshHandler } from "./mesh-handler.js";
import { ProcessingHandler } from "./processing-handler.js";
import { PUBLIC_SERVICES, routes } from "./routes.js";
import { SessionEvents } from "./sessions/session-events.js";
import { SessionManager } from "./sessions/session-manager.js";
import { ArtifactStore } from "./store/artifact-store.js";
import { BatchStore } from "./store/batch-store.js";
import { openDatabase } from "./store/database.js";
import { SessionStore } from "./store/session-store.js";
import { BUILTIN_WORKFLOWS } from "./workflows/templates.js";
import { WorkflowCatalog } from "./workflows/workflow-catalog.js";
import { WorkflowEstimator } from "./workflows/workflow-estimator.js";

export type OrchestratorConfig = ConfigOf<typeof orchestratorSettings>;

export interface Orchestrator {
  readonly server: RunningConnectServer;
  readonly health: HealthRegistry;
  close(): Promise<void>;
}

/** Builds the orchestrator's dependencies, recovers interrupted work and starts listening. */
export async function startOrchestrator(config: OrchestratorConfig, logger: Logger): Promise<Orchestrator> {
  const db = openDatabase(join(config.dataDir, "dmesh.sqlite"));
  const sessionStore = new SessionStore(db);
  const artifacts = new ArtifactStore(db, join(config.dataDir, "artifacts"));
  const max = config.maxMessageBytes;
  const inference = new ReplicaPool("inference", InferenceService, config.inferenceUrls, logger, max);
  const postprocess = new ReplicaPool("postprocess", PostprocessService, config.postprocessUrls, logger, max);
  const device = new ReplicaPool("device", DeviceService, config.deviceUrls, logger, max);
  const workflows = new WorkflowCatalog(BUILTIN_WORKFLOWS);
  const events = new SessionEvents();
  const sessions = new SessionManager(
    {
      store: sessionStore,
      artifacts,
      inference,
      postprocess,
      logger,
      checkpointIntervalSteps: config.checkpointIntervalSteps,
      maxAttempts: config.maxAttempts,
      callTimeoutMs: config.callTimeoutMs,
    },
    events,
    workflows,
    { maxConcurrent: config.maxConcurrentSessions, maxQueued: config.maxQueuedSessions },
    logger,
  );
  const batches = new BatchManager(new BatchStore(db), sessions, events, workflows, config.batchWindow, logger);
  const health = new HealthRegistry([...PUBLIC_SERVICES.map((s) => s.typeName), Health.typeName]);

  // Ready when the work can be done: at least one inference and one postprocess replica answer SERVING.
  const refreshReadiness = async () => {
    await Promise.all([inference.checkHealth(), postprocess.checkHealth()]);
    health.setReady(inference.all().some((r) => r.healthy) && postprocess.all().some((r) => r.healthy));
  };
  await refreshReadiness();
  const readinessTimer = setInterval(() => void refreshReadiness(), config.healthIntervalMs);
  readinessTimer.unref();

  const recovered = sessions.recover();
  batches.recover();
  if (recovered.requeued > 0) logger.info(recovered, "recovered sessions interrupted by a restart");

  const handlers = {
    processing: new ProcessingHandler(workflows, new WorkflowEstimator(inference), sessions, batches, logger),
    mesh: new MeshHandler(inference, postprocess, device, sessions, sessionStore, artifacts, logger),
    artifacts: new ArtifactHandler(artifacts),
  };
  const server = await startConnectServer({
    name: "orchestrator",
    host: config.host,
    port: config.port,
    logger,
    routes: routes(handlers, health),
    interceptors: [createServerInterceptor(logger)],
    maxMessageBytes: max,
    shutdownGraceMs: config.shutdownGraceMs,
    onClose: () => health.setReady(false),
  });

  return {
    server,
    health,
    async close() {
      clearInterval(readinessTimer);
      await server.close();
      await sessions.close();
      for (const pool of [inference, postprocess, device]) pool.close();
      db.close();
    },
  };
}
