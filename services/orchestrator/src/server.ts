import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { DescService } from "@bufbuild/protobuf";
import { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { Health } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import {
  type ConfigOf,
  createServerInterceptor,
  HealthRegistry,
  type Logger,
  observeInterceptors,
  type RunningConnectServer,
  startConnectServer,
  startMetricsServer,
  UnavailableError,
} from "@dmesh/runtime";
import { ArtifactHandler } from "./artifact-handler.js";
import { ArtifactDeletion } from "./artifacts/artifact-deletion.js";
import { BatchManager } from "./batches/batch-manager.js";
import { MAX_BATCH_ITEMS } from "./batches/expand-batch.js";
import { inferenceTelemetry } from "./clients/inference-telemetry.js";
import { ReplicaPool, type Telemetry } from "./clients/replica-pool.js";
import type { orchestratorSettings } from "./config.js";
import { openDoor } from "./door.js";
import { AddressDiscovery } from "./mesh/address-discovery.js";
import { LifecycleEvents } from "./mesh-events/lifecycle-events.js";
import { MeshEventHub } from "./mesh-events/mesh-event-hub.js";
import { ReplicaWatch } from "./mesh-events/replica-watch.js";
import { MeshHandler } from "./mesh-handler.js";
import { countInFlightWith, countSessionsWith } from "./orchestrator-metrics.js";
import { ProcessingHandler } from "./processing-handler.js";
import { PublicConditioningHandler } from "./public-conditioning-handler.js";
import { PublicModelHandler } from "./public-model-handler.js";
import { PUBLIC_SERVICES, routes } from "./routes.js";
import { ReplicaCoordinator } from "./sessions/replica-coordinator.js";
import { SessionEvents } from "./sessions/session-events.js";
import { SessionManager } from "./sessions/session-manager.js";
import { parseTenantQuotas, quotaOf } from "./sessions/tenant-quotas.js";
import { createStaticFiles, playgroundDir } from "./static-files.js";
import { openStores } from "./store/open-stores.js";
import { BatchFeeders } from "./store/postgres/batch-feeders.js";
import type { PgSessionStore } from "./store/postgres/pg-session-store.js";
import { ReplicaLeases } from "./store/postgres/replica-leases.js";
import { SessionEventBus } from "./store/postgres/session-event-bus.js";
import { WebhookDispatcher } from "./webhooks/webhook-dispatcher.js";
import { parseTenantSecrets, WebhookPolicy } from "./webhooks/webhook-policy.js";
import { webhookTriggers } from "./webhooks/webhook-triggers.js";
import { BUILTIN_WORKFLOWS } from "./workflows/builtin-workflows.js";
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
  const door = openDoor(config, logger);
  // Unique per process: a restarted replica's old sessions are adopted like a dead one's.
  const replicaId = `${hostname()}-${randomUUID().slice(0, 8)}`;
  const stores = await openStores(
    {
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      replicaId,
      leaseMs: config.orchestratorLeaseMs,
    },
    logger,
  );
  const { sessions: sessionStore, artifacts, commits } = stores;
  // Several replicas on PostgreSQL: leases, claims and events between them (SQLite: this one owns all).
  const coordinator = stores.postgres
    ? new ReplicaCoordinator(
        new ReplicaLeases(
          stores.postgres,
          replicaId,
          config.orchestratorLeaseMs,
          sessionStore as PgSessionStore,
        ),
        sessionStore as PgSessionStore,
        stores.postgres,
        config.databaseUrl,
        config.orchestratorLeaseMs,
        logger,
      )
    : undefined;
  const bus = stores.postgres
    ? new SessionEventBus(stores.postgres, config.databaseUrl, replicaId, sessionStore, logger)
    : undefined;
  const max = config.maxMessageBytes;
  // Replica lists may name DNS entries (a headless Service per domain): resolved now, and again periodically.
  const discoveries: AddressDiscovery[] = [];
  const pool = async <S extends DescService>(
    domain: string,
    service: S,
    entries: string[],
    telemetry?: Telemetry<S>,
  ) => {
    const discovery = new AddressDiscovery(domain, entries, logger);
    const addresses = await discovery.resolve();
    const replicas = new ReplicaPool(
      domain,
      service,
      addresses,
      logger,
      max,
      telemetry,
      config.replicaLostAfterMs,
      door.clientTls,
    );
    if (discovery.usesDns) {
      discovery.refreshEvery(config.discoveryIntervalMs, addresses, (a) => replicas.setAddresses(a));
      discoveries.push(discovery);
    }
    return replicas;
  };
  const inference = await pool("inference", InferenceService, config.inferenceUrls, inferenceTelemetry);
  const postprocess = await pool("postprocess", PostprocessService, config.postprocessUrls);
  const device = await pool("device", DeviceService, config.deviceUrls);
  const stepTimings = stores.stepTimings;
  const workflows = new WorkflowCatalog(BUILTIN_WORKFLOWS, stores.workflows);
  await workflows.load();
  const quotas = parseTenantQuotas(config.tenantQuotas);
  const mesh = {
    running: config.maxConcurrentSessions,
    queued: config.maxQueuedSessions,
    batchItems: MAX_BATCH_ITEMS,
  };
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
      retryBackoffMs: config.retryBackoffMs,
      callTimeoutMs: config.callTimeoutMs,
      streamIdleTimeoutMs: config.streamIdleTimeoutMs,
      timings: stepTimings,
    },
    events,
    commits,
    workflows,
    {
      maxConcurrent: config.maxConcurrentSessions,
      maxQueued: config.maxQueuedSessions,
      quotaOf: (tenant) => quotaOf(quotas, mesh, tenant),
    },
    logger,
    coordinator,
  );
  if (bus) {
    events.onPublish((event) => {
      bus.publish(event).catch((err: unknown) => {
        logger.warn({ err: String(err) }, "session event not sent to the other replicas");
      });
    });
    await bus.subscribe((event) => events.deliver(event));
  }
  const batches = new BatchManager(
    stores.batches,
    sessions,
    events,
    commits,
    workflows,
    config.batchWindow,
    logger,
    { replicas: inference, maxGroupImages: config.batchGroupMax },
    stores.postgres ? new BatchFeeders(stores.postgres, replicaId) : undefined,
  );
  const health = new HealthRegistry([...PUBLIC_SERVICES.map((s) => s.typeName), Health.typeName]);
  const meshEvents = new MeshEventHub();
  const replicaWatch = new ReplicaWatch([inference, postprocess], meshEvents);
  const lifecycle = new LifecycleEvents(meshEvents);
  events.onStateChange(lifecycle.onSession);
  batches.onSave(lifecycle.onBatch);
  const webhookPolicy = new WebhookPolicy({
    allowedUrls: config.webhookAllowedUrls,
    meshSecret: config.webhookSecret,
    tenantSecrets: parseTenantSecrets(config.webhookTenantSecrets),
    keysOn: config.apiKeysFile !== "",
  });
  const webhooks = new WebhookDispatcher(
    stores.webhooks,
    webhookPolicy,
    {
      maxAttempts: config.webhookMaxAttempts,
      initialBackoffMs: config.webhookRetryMs,
      maxBackoffMs: 300_000,
      timeoutMs: config.webhookTimeoutMs,
    },
    logger,
  );
  const triggers = webhookTriggers(webhooks, logger);
  events.onStateChange(triggers.onSession);
  batches.onSave(triggers.onBatch);
  webhooks.start();
  countSessionsWith(() => sessionStore.countsByTenant());
  countInFlightWith(() => {
    const { queued, running } = sessions.counts();
    return queued + running;
  });

  // Ready when the work can be done: at least one inference and one postprocess replica answer SERVING.
  const refreshReadiness = async () => {
    await Promise.all([inference.checkHealth(), postprocess.checkHealth()]);
    replicaWatch.observe();
    health.setReady(inference.all().some((r) => r.healthy) && postprocess.all().some((r) => r.healthy));
  };
  await refreshReadiness();
  const readinessTimer = setInterval(() => void refreshReadiness(), config.healthIntervalMs);
  readinessTimer.unref();

  if (coordinator) {
    // What stopped with a replica is claimed once that replica's lease is over, by whichever has room.
    await coordinator.start(sessions);
    logger.info({ replicaId }, "orchestrator replica on PostgreSQL");
  } else {
    const recovered = await sessions.recover();
    await batches.recover();
    if (recovered.requeued > 0) logger.info(recovered, "recovered sessions interrupted by a restart");
  }

  const handlers = {
    processing: new ProcessingHandler(
      workflows,
      new WorkflowEstimator(inference, stepTimings),
      sessions,
      batches,
      webhookPolicy,
      logger,
    ),
    mesh: new MeshHandler(
      inference,
      postprocess,
      device,
      sessions,
      sessionStore,
      artifacts,
      logger,
      meshEvents,
    ),
    artifacts: new ArtifactHandler(artifacts, new ArtifactDeletion(artifacts, sessions), logger),
    models: new PublicModelHandler(inference, logger),
    conditioning: new PublicConditioningHandler(inference, logger),
  };
  const server = await startConnectServer({
    name: "orchestrator",
    host: config.host,
    port: config.port,
    logger,
    routes: routes(handlers, health),
    interceptors: [
      ...observeInterceptors({ system: "connect_rpc" }),
      createServerInterceptor(logger),
      door.auth,
    ],
    maxMessageBytes: max,
    shutdownGraceMs: config.shutdownGraceMs,
    onClose: () => health.setReady(false),
    tls: config,
    corsOrigins: config.corsOrigins,
    // GET / and the page's assets; every RPC path stays the API's.
    fallback: createStaticFiles(playgroundDir(), logger),
    mayScrape: door.mayScrape,
  });
  const metrics =
    config.metricsPort >= 0
      ? await startMetricsServer(config.host, config.metricsPort, logger).catch(async (err: unknown) => {
          await server.close();
          throw err;
        })
      : undefined;

  return {
    server,
    health,
    async close() {
      clearInterval(readinessTimer);
      health.setReady(false);
      for (const discovery of discoveries) discovery.close();
      // Sessions first: running ones stop where a restart resumes them, and their watchers' streams end
      // (UNAVAILABLE, watch again) instead of keeping the server's drain waiting.
      await sessions.close();
      // Its sessions go to the other replicas at once rather than after the lease.
      await coordinator?.stop();
      await bus?.close();
      meshEvents.close(
        new UnavailableError("the orchestrator is shutting down, watch again once it is back"),
      );
      await server.close();
      await metrics?.close();
      for (const replicas of [inference, postprocess, device]) replicas.close();
      await webhooks.close();
      await stores.close();
      door.close();
    },
  };
}
