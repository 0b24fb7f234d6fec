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

const SERVER_EXTENSIONS = `subjectAltName=DNS:localhost,DNS:${TEST_SERVER_NAME},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`;
const NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
let serial = Date.now();

const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });

/**
 * Makes fresh certificates under `dir` (names prefixed with `prefix`) with Debian's `openssl` (node:crypto
 * cannot sign X.509): P-256 keys, valid two days. The server certificate is for localhost, 127.0.0.1 and
 * TEST_SERVER_NAME.
 */
export function makeTestCertificates(dir: string, prefix = ""): TestCertificates {
  const path = (name: string) => join(dir, `${prefix}${name}`);
  for (const ca of ["ca", "stranger-ca"]) {
    openssl(
      "req",
      "-x509",
      ...NEW_KEY,
      "-keyout",
      path(`${ca}.key`),
      "-out",
      path(`${ca}.crt`),
      "-days",
      "2",
      "-subj",
      `/CN=${prefix}${ca}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
  }
  signLeaf(path, "server", "ca", SERVER_EXTENSIONS);
  signLeaf(path, "client", "ca", "extendedKeyUsage=clientAuth\n");
  signLeaf(path, "stranger", "stranger-ca", "extendedKeyUsage=clientAuth\n");
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

/** A new server certificate and key signed by the same CA as `makeTestCertificates(dir, prefix)` made. */
export function reissueServerCertificate(
  dir: string,
  prefix: string,
  name: string,
): { cert: string; key: string } {
  const path = (file: string) => join(dir, `${prefix}${file}`);
  signLeaf(path, name, "ca", SERVER_EXTENSIONS);
  return { cert: path(`${name}.crt`), key: path(`${name}.key`) };
}

function signLeaf(path: (file: string) => string, name: string, signer: string, extensions: string): void {
  writeFileSync(path(`${name}.ext`), extensions);
  openssl(
    "req",
    ...NEW_KEY,
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
    String(serial++),
    "-days",
    "2",
    "-out",
    path(`${name}.crt`),
    "-extfile",
    path(`${name}.ext`),
  );
}
