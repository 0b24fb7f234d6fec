import type { DescService } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { Health } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import * as grpc from "@grpc/grpc-js";
import { createGrpcServer, type ServiceRegistration } from "./grpc-server.js";
import { createHealthService, HealthRegistry } from "./health.js";
import { createServerInterceptor } from "./interceptors.js";
import type { Logger } from "./logger.js";
import { startMetricsServer } from "./metrics-server.js";
import { observeInterceptors } from "./observe-interceptor.js";
import { createReflectionServices } from "./reflection.js";
import { ServerTls, type ServerTlsConfig } from "./tls.js";
import { stopTracing } from "./tracing.js";

export interface ServiceHostOptions {
  name: string;
  host: string;
  /** 0 = any free port (tests). */
  port: number;
  logger: Logger;
  registrations: ServiceRegistration[];
  maxMessageBytes: number;
  shutdownGraceMs: number;
  interceptors?: Interceptor[];
  /** TLS_CERT_FILE and friends (a service passes its config); plaintext without a certificate. */
  tls?: ServerTlsConfig;
  /**
   * HTTP port of Prometheus `/metrics` (METRICS_PORT); 0 = any free one; absent or negative = none, and then
   * no grpc_server_* metrics are recorded either.
   */
  metricsPort?: number;
}

export interface RunningService {
  readonly port: number;
  readonly address: string;
  readonly health: HealthRegistry;
  /** Where `/metrics` is served, when it is. */
  readonly metricsPort?: number;
  /** Readiness drops first, then streams get the grace period to finish, then the rest is cut. */
  close(): Promise<void>;
}

/** The listening part of ServiceHostOptions, as a service's config holds it (the common settings and PORT). */
export type ListenConfig = Pick<ServiceHostOptions, "host" | "port" | "maxMessageBytes" | "shutdownGraceMs"> &
  ServerTlsConfig & { readonly metricsPort?: number };

/** A service's config as the host options it listens with: address, limits, grace, TLS and metrics port. */
export function listenOptions(config: ListenConfig) {
  const { host, port, maxMessageBytes, shutdownGraceMs, metricsPort } = config;
  return { host, port, maxMessageBytes, shutdownGraceMs, tls: config, metricsPort };
}

/** Builds and starts a domain service on gRPC/HTTP2 with health, reflection and the common interceptors. */
export async function startGrpcService(options: ServiceHostOptions): Promise<RunningService> {
  const domain: DescService[] = options.registrations.map((r) => r.service);
  const metrics = options.metricsPort !== undefined && options.metricsPort >= 0;
  const health = new HealthRegistry(domain.map((s) => s.typeName));
  const reflection = createReflectionServices([...domain, Health]);
  const shutdown = new AbortController();
  const server = createGrpcServer({
    registrations: [
      ...options.registrations,
      { service: Health, impl: createHealthService(health) },
      ...reflection,
    ],
    interceptors: [
      ...observeInterceptors({ system: "grpc", metrics }),
      createServerInterceptor(options.logger),
      ...(options.interceptors ?? []),
    ],
    maxMessageBytes: options.maxMessageBytes,
    shutdownSignal: shutdown.signal,
  });
  const tls = ServerTls.from(options.tls, options.logger);
  const credentials = tls?.grpcCredentials() ?? grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, credentials, (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  ).catch((err: unknown) => {
    tls?.close();
    throw err;
  });
  const address = `${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;
  const security = tls ? (tls.requireClientCertificate ? "mutual TLS" : "TLS") : "plaintext";
  options.logger.info({ address, security }, `${options.name} listening`);
  const metricsServer =
    metrics && options.metricsPort !== undefined
      ? await startMetricsServer(options.host, options.metricsPort, options.logger).catch((err: unknown) => {
          server.forceShutdown();
          tls?.close();
          throw err;
        })
      : undefined;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      health.setReady(false);
      const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const timer = new Promise<"timeout">((resolve) =>
        setTimeout(() => resolve("timeout"), options.shutdownGraceMs).unref(),
      );
      if ((await Promise.race([drained, timer])) === "timeout") {
        options.logger.warn(
          { graceMs: options.shutdownGraceMs },
          "drain timed out; cancelling remaining calls",
        );
        shutdown.abort(new Error("server shutting down"));
        server.forceShutdown();
      }
      shutdown.abort(new Error("server shut down"));
      tls?.close();
      await metricsServer?.close();
    })();
    return closing;
  };
  return { port, address, health, close, ...(metricsServer ? { metricsPort: metricsServer.port } : {}) };
}

/** SIGTERM/SIGINT close the service gracefully once; a second signal exits at once. */
export function closeOnSignals(service: { close(): Promise<void> }, logger: Logger): void {
  let count = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    count++;
    if (count > 1) process.exit(130);
    logger.info({ signal }, "shutting down");
    service.close().then(
      // Spans still batched leave before the process does.
      () => void stopTracing().finally(() => process.exit(0)),
      (err) => {
        logger.error({ err: String(err) }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}
