import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  makeTestCertificates,
  TEST_SERVER_NAME,
  type TestCertificates,
} from "../../../test/support/test-certificates.js";
import {
  ClientTls,
  createGrpcTransport,
  createHealthService,
  createLogger,
  createServerInterceptor,
  HealthRegistry,
  type RunningConnectServer,
  type RunningService,
  startConnectServer,
  startGrpcService,
} from "../src/index.js";

const logger = createLogger("test", "silent");
let dir: string;
let certs: TestCertificates;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "dmesh-tls-"));
  certs = makeTestCertificates(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const noClientTls = { tlsClientCertFile: "", tlsClientKeyFile: "", tlsServerName: "" };

/** Health of a service at `address` over a client built from `tls` settings (undefined = plaintext). */
async function check(address: string, tls?: ClientTls): Promise<Status> {
  const transport = createGrpcTransport({ address, ...(tls ? { tls } : {}) });
  try {
    return (await createClient(Health, transport).check({ service: "" }, { timeoutMs: 3000 })).status;
  } finally {
    transport.close();
  }
}

async function grpcService(tls: { tlsCertFile: string; tlsKeyFile: string; tlsClientCaFile: string }) {
  const service = await startGrpcService({
    name: "test",
    host: "127.0.0.1",
    port: 0,
    logger,
    registrations: [],
    maxMessageBytes: 1024 * 1024,
    shutdownGraceMs: 200,
    tls,
  });
  service.health.setReady(true);
  return service;
}

describe("TLS on a grpc-js service", () => {
  let service: RunningService;
  afterAll(() => service?.close());

  it("serves TLS clients that trust its CA, by address or by the certificate's name, and refuses plaintext", async () => {
    service = await grpcService({
      tlsCertFile: certs.serverCert,
      tlsKeyFile: certs.serverKey,
      tlsClientCaFile: "",
    });
    const trusting = new ClientTls({ tlsCaFile: certs.caCert, ...noClientTls }, logger);
    const byName = new ClientTls(
      { tlsCaFile: certs.caCert, ...noClientTls, tlsServerName: TEST_SERVER_NAME },
      logger,
    );
    const stranger = new ClientTls({ tlsCaFile: join(dir, "stranger-ca.crt"), ...noClientTls }, logger);
    try {
      expect(await check(service.address, trusting)).toBe(Status.SERVING);
      expect(await check(service.address, byName)).toBe(Status.SERVING);
      await expect(check(service.address, stranger)).rejects.toMatchObject({ code: Code.Unavailable });
      await expect(check(service.address)).rejects.toBeInstanceOf(ConnectError);
    } finally {
      for (const tls of [trusting, byName, stranger]) tls.close();
    }
  });
});

describe("mutual TLS on a grpc-js service", () => {
  let service: RunningService;
  afterAll(() => service?.close());

  it("admits only clients presenting a certificate its client CA signed", async () => {
    service = await grpcService({
      tlsCertFile: certs.serverCert,
      tlsKeyFile: certs.serverKey,
      tlsClientCaFile: certs.caCert,
    });
    const client = (cert: string, key: string) =>
      new ClientTls(
        { tlsCaFile: certs.caCert, tlsClientCertFile: cert, tlsClientKeyFile: key, tlsServerName: "" },
        logger,
      );
    const member = client(certs.clientCert, certs.clientKey);
    const stranger = client(certs.strangerCert, certs.strangerKey);
    const anonymous = new ClientTls({ tlsCaFile: certs.caCert, ...noClientTls }, logger);
    try {
      expect(await check(service.address, member)).toBe(Status.SERVING);
      await expect(check(service.address, stranger)).rejects.toMatchObject({ code: Code.Unavailable });
      await expect(check(service.address, anonymous)).rejects.toMatchObject({ code: Code.Unavailable });
    } finally {
      for (const tls of [member, stranger, anonymous]) tls.close();
    }
  });

  it("answers the exec health probe, which reads the container's own TLS settings", async () => {
    const port = String(service.address.split(":").at(-1));
    // Not spawnSync: the service answering runs in this process.
    const probe = (name: string, env: Record<string, string>) =>
      new Promise<{ status: number; stdout: string }>((resolve) => {
        execFile(
          process.execPath,
          [join(import.meta.dirname, "../dist/health-probe.js"), name],
          { env: { PATH: process.env.PATH ?? "", PORT: port, ...env }, encoding: "utf8", timeout: 10_000 },
          (err, stdout) =>
            resolve({ status: typeof err?.code === "number" ? err.code : err ? -1 : 0, stdout }),
        );
      });
    const container = {
      TLS_CERT_FILE: certs.serverCert,
      TLS_KEY_FILE: certs.serverKey,
      TLS_CLIENT_CA_FILE: certs.caCert,
    };
    const serving = await probe("liveness", container);
    expect([serving.status, serving.stdout.trim()]).toEqual([0, "SERVING"]);
    service.health.setReady(false);
    const notReady = await probe("", container);
    expect([notReady.status, notReady.stdout.trim()]).toEqual([1, "NOT_SERVING"]);
    // Without the certificate it cannot get in.
    expect((await probe("liveness", {})).status).toBe(1);
  });
});

describe("certificate reload on the Connect listener", () => {
  let server: RunningConnectServer;
  afterAll(() => server?.close());

  it("presents a rotated certificate to new connections, and keeps the old one when the new files are bad", async () => {
    // The listener reads copies that the test then replaces, as a Secret update would.
    const live = { cert: join(dir, "live.crt"), key: join(dir, "live.key") };
    copyFileSync(certs.serverCert, live.cert);
    copyFileSync(certs.serverKey, live.key);
    server = await startConnectServer({
      name: "test",
      host: "127.0.0.1",
      port: 0,
      logger,
      routes: (router) => router.service(Health, createHealthService(ready())),
      interceptors: [createServerInterceptor(logger)],
      maxMessageBytes: 1024 * 1024,
      shutdownGraceMs: 200,
      tls: { tlsCertFile: live.cert, tlsKeyFile: live.key, tlsClientCaFile: "" },
    });
    const second = makeTestCertificates(dir, "second-");
    const connectCheck = async (ca: string) => {
      const transport = createConnectTransport({
        baseUrl: `https://localhost:${server.port}`,
        httpVersion: "1.1",
        // A connection of its own each time: a kept-alive one would still show the certificate it began with.
        nodeOptions: { ca: [readFileSync(ca)], agent: false },
      });
      return (await createClient(Health, transport).check({ service: "" }, { timeoutMs: 3000 })).status;
    };
    expect(await connectCheck(certs.caCert)).toBe(Status.SERVING);
    const grpcOld = new ClientTls({ tlsCaFile: certs.caCert, ...noClientTls }, logger);
    expect(await check(server.address, grpcOld)).toBe(Status.SERVING);
    grpcOld.close();

    // A key that does not match the certificate: refused, the old pair stays.
    copyFileSync(second.serverKey, live.key);
    await new Promise((r) => setTimeout(r, 600));
    expect(await connectCheck(certs.caCert)).toBe(Status.SERVING);

    copyFileSync(second.serverCert, live.cert);
    await eventually(
      async () => (await connectCheck(second.caCert).catch(() => undefined)) === Status.SERVING,
    );
    await expect(connectCheck(certs.caCert)).rejects.toThrow();
    writeFileSync(live.cert, "not a certificate");
    await new Promise((r) => setTimeout(r, 600));
    expect(await connectCheck(second.caCert)).toBe(Status.SERVING);
  });
});

function ready(): HealthRegistry {
  const health = new HealthRegistry([]);
  health.setReady(true);
  return health;
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}
