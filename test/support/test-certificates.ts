import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** PEM files a test made: a CA, a server and a client certificate it signed, and one from another CA. */
export interface TestCertificates {
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** Signed by a CA nobody trusts. */
  readonly strangerCert: string;
  readonly strangerKey: string;
}

/** Names the server certificate carries; internal clients dial by address and check this one. */
export const TEST_SERVER_NAME = "dmesh-internal";

/**
 * Makes fresh certificates under `dir` with Debian's `openssl` (node:crypto cannot sign X.509): P-256 keys,
 * valid two days. The server certificate is for localhost, 127.0.0.1 and TEST_SERVER_NAME.
 */
export function makeTestCertificates(dir: string, prefix = ""): TestCertificates {
  const path = (name: string) => join(dir, `${prefix}${name}`);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = (name: string) => {
    openssl(
      "req",
      "-x509",
      ...newKey,
      "-keyout",
      path(`${name}.key`),
      "-out",
      path(`${name}.crt`),
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
  };
  const leaf = (name: string, signer: string, extensions: string) => {
    writeFileSync(path(`${name}.ext`), extensions);
    openssl(
      "req",
      ...newKey,
      "-keyout",
      path(`${name}.key`),
      "-out",
      path(`${name}.csr`),
      "-subj",
      `/CN=${name}`,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      path(`${name}.csr`),
      "-CA",
      path(`${signer}.crt`),
      "-CAkey",
      path(`${signer}.key`),
      "-set_serial",
      String(Date.now()),
      "-days",
      "2",
      "-out",
      path(`${name}.crt`),
      "-extfile",
      path(`${name}.ext`),
    );
  };
  ca("ca");
  ca("stranger-ca");
  leaf(
    "server",
    "ca",
    `subjectAltName=DNS:localhost,DNS:${TEST_SERVER_NAME},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  leaf("client", "ca", "extendedKeyUsage=clientAuth\n");
  leaf("stranger", "stranger-ca", "extendedKeyUsage=clientAuth\n");
  return {
    caCert: path("ca.crt"),
    serverCert: path("server.crt"),
    serverKey: path("server.key"),
    clientCert: path("client.crt"),
    clientKey: path("client.key"),
    strangerCert: path("stranger.crt"),
    strangerKey: path("stranger.key"),
  };
}
