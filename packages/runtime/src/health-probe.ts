#!/usr/bin/env node
// A gRPC health probe for Kubernetes `exec` probes where the service listens with TLS: the kubelet's own
// `grpc` probe speaks plaintext only. Run in the service's container, it reads the container's settings
// (PORT, TLS_*), checks `grpc.health.v1.Health/Check` on 127.0.0.1 and exits 0 for SERVING, 1 otherwise.
//   node packages/runtime/dist/health-probe.js [SERVICE]     SERVICE: "" (readiness, the default) or liveness
import { createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { commonSettings, loadConfig, parse } from "./config.js";
import { createGrpcTransport } from "./grpc-transport.js";
import { createLogger } from "./logger.js";
import { ClientTls } from "./tls.js";

const PROBE_TIMEOUT_MS = 2000;

const settings = {
  ...commonSettings,
  port: { env: "PORT", description: "the service's port", parse: parse.int(1, 65535) },
};

async function probe(service: string): Promise<boolean> {
  // Dialling 127.0.0.1 with TLS makes Node warn about an IP as server name on every run; the probe's output
  // is what the kubelet records.
  process.noDeprecation = true;
  const config = loadConfig(settings, process.env, []);
  // The listener's own CA verifies it (TLS_CA_FILE); a listener that asks for client certificates gets the
  // service's client certificate, else its own (both from the mesh's CA).
  const tls = config.tlsCertFile
    ? new ClientTls(
        {
          tlsCaFile: config.tlsCaFile || config.tlsClientCaFile,
          tlsClientCertFile: config.tlsClientCertFile || config.tlsCertFile,
          tlsClientKeyFile: config.tlsClientKeyFile || config.tlsKeyFile,
          tlsServerName: config.tlsServerName,
        },
        createLogger("health-probe", "silent"),
      )
    : undefined;
  const transport = createGrpcTransport({ address: `127.0.0.1:${config.port}`, ...(tls ? { tls } : {}) });
  try {
    const res = await createClient(Health, transport).check({ service }, { timeoutMs: PROBE_TIMEOUT_MS });
    process.stdout.write(`${Serving[res.status]}\n`);
    return res.status === Serving.SERVING;
  } finally {
    transport.close();
    tls?.close();
  }
}

probe(process.argv[2] ?? "").then(
  (serving) => process.exit(serving ? 0 : 1),
  (err: unknown) => {
    process.stdout.write(`${(err as Error).message}\n`);
    process.exit(1);
  },
);
