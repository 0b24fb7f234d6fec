import { X509Certificate } from "node:crypto";
import { copyFileSync, readFileSync } from "node:fs";
import { connect } from "node:tls";
import { createClient } from "@connectrpc/connect";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { ClientTls, createGrpcTransport, createLogger } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { artifactBytes, collect, eventually, tinySpec } from "../faults/support/sessions.js";
import { TestMesh } from "../faults/support/test-mesh.js";
import { pngInfo } from "../support/png-info.js";
import {
  makeTestCertificates,
  reissueServerCertificate,
  TEST_SERVER_NAME,
  type TestCertificates,
} from "../support/test-certificates.js";
import { outcome, scratchDir } from "./support/door-mesh.js";

const logger = createLogger("test", "silent");
const scratch = scratchDir();
let certs: TestCertificates;
let mesh: TestMesh;
let member: ClientTls;
/** Postprocess reads these copies, which the test replaces to rotate its certificate. */
let live: { cert: string; key: string };

const clientTls = (files: { ca: string; cert?: string; key?: string }) =>
  new ClientTls(
    {
      tlsCaFile: files.ca,
      tlsClientCertFile: files.cert ?? "",
      tlsClientKeyFile: files.key ?? "",
      tlsServerName: "",
    },
    logger,
  );

beforeAll(async () => {
  certs = makeTestCertificates(scratch.dir);
  live = { cert: `${scratch.dir}/live.crt`, key: `${scratch.dir}/live.key` };
  copyFileSync(certs.serverCert, live.cert);
  copyFileSync(certs.serverKey, live.key);
  // Domain services: TLS, and only clients with a certificate of the mesh's CA (mutual TLS).
  const domain = (cert: string, key: string) => ({
    TLS_CERT_FILE: cert,
    TLS_KEY_FILE: key,
    TLS_CLIENT_CA_FILE: certs.caCert,
  });
  member = clientTls({ ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey });
  mesh = await TestMesh.start({
    inferenceEnv: domain(certs.serverCert, certs.serverKey),
    postprocessEnv: domain(live.cert, live.key),
    orchestratorEnv: {
      // The public port: TLS, no client certificate asked.
      TLS_CERT_FILE: certs.serverCert,
      TLS_KEY_FILE: certs.serverKey,
      // Its calls to the domain services: verified by the mesh's CA under the certificates' name, with the
      // orchestrator's client certificate.
      TLS_CA_FILE: certs.caCert,
      TLS_CLIENT_CERT_FILE: certs.clientCert,
      TLS_CLIENT_KEY_FILE: certs.clientKey,
      TLS_SERVER_NAME: TEST_SERVER_NAME,
    },
    tls: member,
  });
}, 120_000);
afterAll(async () => {
  await mesh?.stop();
  member?.close();
  scratch.remove();
});

async function health(address: string, tls?: ClientTls) {
  const transport = createGrpcTransport({ address, ...(tls ? { tls } : {}) });
  try {
    return await outcome(async () => {
      const res = await createClient(Health, transport).check({ service: "" }, { timeoutMs: 3000 });
      if (res.status !== Serving.SERVING) throw new Error(Serving[res.status]);
    });
  } finally {
    transport.close();
  }
}

/** The serial number of the certificate a TLS listener presents now (to a client of the mesh). */
function presentedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: "127.0.0.1",
      port,
      servername: TEST_SERVER_NAME,
      ca: readFileSync(certs.caCert),
      cert: readFileSync(certs.clientCert),
      key: readFileSync(certs.clientKey),
      ALPNProtocols: ["h2"],
    });
    socket.once("secureConnect", () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

describe("TLS on every hop", () => {
  it("makes an image through the orchestrator over TLS and the domain services over mutual TLS", async () => {
    const events = await collect(
      mesh.clients.processing.executeWorkflow({ workflowId: "txt2img", spec: tinySpec({ steps: 2 }) }),
    );
    const session = events.at(-1)?.session;
    expect(session?.state).toBe(SessionState.COMPLETED);
    expect(pngInfo(await artifactBytes(mesh.clients, session?.artifactIds[0] ?? "")).width).toBe(64);
    const listening = (file: string) =>
      readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l.includes("listening"))
        .map((l) => (JSON.parse(l) as { security: string }).security);
    expect(listening(mesh.inference[0]?.logFile ?? "")).toEqual(["mutual TLS"]);
    expect(listening(mesh.postprocess.logFile)).toEqual(["mutual TLS"]);
    expect(listening(mesh.orchestrator.logFile)).toEqual(["TLS"]);
  });

  it("lets no one else in: plaintext, no client certificate, or one from another CA", async () => {
    const inference = mesh.inference[0]?.address ?? "";
    const anonymous = clientTls({ ca: certs.caCert });
    const stranger = clientTls({ ca: certs.caCert, cert: certs.strangerCert, key: certs.strangerKey });
    try {
      expect(await health(inference, member)).toBe("ok");
      for (const refused of [
        await health(inference),
        await health(inference, anonymous),
        await health(inference, stranger),
      ])
        expect(refused).toMatchObject({ code: "Unavailable" });
      // The public port asks no client certificate, but speaks TLS only.
      expect(await health(mesh.orchestrator.address, anonymous)).toBe("ok");
      expect(await health(mesh.orchestrator.address)).not.toBe("ok");
    } finally {
      anonymous.close();
      stranger.close();
    }
  });

  it("serves a rotated certificate from the files on disk, and the mesh keeps working", async () => {
    const before = await presentedSerial(mesh.postprocess.port);
    expect(before).toBe(new X509Certificate(readFileSync(certs.serverCert)).serialNumber);
    const next = reissueServerCertificate(scratch.dir, "", "server-next");
    copyFileSync(next.key, live.key);
    copyFileSync(next.cert, live.cert);
    const expected = new X509Certificate(readFileSync(next.cert)).serialNumber;
    await eventually(
      async () => ((await presentedSerial(mesh.postprocess.port)) === expected ? true : undefined),
      15_000,
      "postprocess to present the new certificate",
    );
    const events = await collect(
      mesh.clients.processing.executeWorkflow({
        workflowId: "txt2img",
        spec: tinySpec({ seed: 3, steps: 2 }),
      }),
    );
    expect(events.at(-1)?.session?.state).toBe(SessionState.COMPLETED);
  });
});
