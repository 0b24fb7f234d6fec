import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { type FileWatch, watchFiles } from "./file-watch.js";
import type { Logger } from "./logger.js";

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** A listener's TLS settings (`commonSettings`): its certificate, and the CAs of clients it requires. */
export interface ServerTlsConfig {
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  readonly tlsClientCaFile: string;
}

/** TLS settings of a service's calls to other services. */
export interface ClientTlsConfig {
  readonly tlsCaFile: string;
  readonly tlsClientCertFile: string;
  readonly tlsClientKeyFile: string;
  readonly tlsServerName: string;
}

interface Pem {
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly ca?: Buffer;
}

/**
 * PEM files (a certificate and its key, CAs) read now and again whenever they change. A new set is checked
 * (the key must match the certificate, every PEM must parse) before anyone uses it; a bad one keeps the
 * previous set and the log says why, so a half-written rotation never takes a listener down. It is the
 * certificate provider of grpc-js's TLS credentials and tells the Connect listener too.
 */
class PemFiles implements CertificateProvider {
  private current: Pem;
  private readonly watch: FileWatch;
  private readonly ca = new Set<CaListener>();
  private readonly identity = new Set<IdentityListener>();
  private readonly others = new Set<(pem: Pem) => void>();

  constructor(
    private readonly files: { cert?: string; key?: string; ca?: string },
    private readonly what: string,
    private readonly logger: Logger,
  ) {
    if (Boolean(files.cert) !== Boolean(files.key))
      throw new Error(`${what}: a certificate and its key are given together or not at all`);
    this.current = this.read();
    const paths = [files.cert, files.key, files.ca].filter((p): p is string => Boolean(p));
    this.watch = watchFiles(paths, () => this.reload());
  }

  get pem(): Pem {
    return this.current;
  }

  onChange(listener: (pem: Pem) => void): void {
    this.others.add(listener);
  }

  close(): void {
    this.watch.close();
    this.others.clear();
  }

  // grpc-js asks for updates once per credentials user; it must hear them after it has registered its
  // own watcher, hence the next tick (as grpc-js's own file watcher does).
  addCaCertificateListener(listener: CaListener): void {
    this.ca.add(listener);
    process.nextTick(() => this.tellCa(listener));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.ca.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identity.add(listener);
    process.nextTick(() => this.tellIdentity(listener));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identity.delete(listener);
  }

  private tellCa(listener: CaListener): void {
    listener(this.current.ca ? { caCertificate: this.current.ca } : null);
  }

  private tellIdentity(listener: IdentityListener): void {
    const { cert, key } = this.current;
    listener(cert && key ? { certificate: cert, privateKey: key } : null);
  }

  private reload(): void {
    try {
      this.current = this.read();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, `${this.what} not reloaded; the previous files stay`);
      return;
    }
    this.logger.info({ files: this.files }, `${this.what} reloaded`);
    for (const listener of this.ca) this.tellCa(listener);
    for (const listener of this.identity) this.tellIdentity(listener);
    for (const listener of this.others) listener(this.current);
  }

  private read(): Pem {
    const load = (path: string | undefined) => {
      if (!path) return undefined;
      try {
        return readFileSync(path);
      } catch (err) {
        throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
    };
    const pem = { cert: load(this.files.cert), key: load(this.files.key), ca: load(this.files.ca) };
    try {
      createSecureContext(pem);
    } catch (err) {
      throw new Error(`${this.what}: ${(err as Error).message}`);
    }
    return pem;
  }
}

/** TLS of a listener: what grpc-js and the Connect listener are given, both following the files. */
export class ServerTls {
  private readonly files: PemFiles;
  readonly requireClientCertificate: boolean;

  constructor(config: ServerTlsConfig, logger: Logger) {
    this.requireClientCertificate = config.tlsClientCaFile !== "";
    this.files = new PemFiles(
      { cert: config.tlsCertFile, key: config.tlsKeyFile, ca: config.tlsClientCaFile || undefined },
      "TLS_CERT_FILE/TLS_KEY_FILE/TLS_CLIENT_CA_FILE",
      logger,
    );
  }

  /** A listener's TLS when TLS_CERT_FILE is set; undefined for plaintext. */
  static from(config: ServerTlsConfig | undefined, logger: Logger): ServerTls | undefined {
    return config?.tlsCertFile ? new ServerTls(config, logger) : undefined;
  }

  grpcCredentials(): grpc.ServerCredentials {
    // grpc-js's parameter names are swapped against its class: the first provider is the identity one.
    return grpc.experimental.createCertificateProviderServerCredentials(
      this.files,
      this.requireClientCertificate ? this.files : null,
      this.requireClientCertificate,
    );
  }

  /** Options for `tls.Server` (and `setSecureContext`): certificate, key and, with mutual TLS, client CAs. */
  secureContextOptions(): SecureContextOptions {
    const { cert, key, ca } = this.files.pem;
    return { cert, key, ...(ca ? { ca } : {}) };
  }

  onChange(listener: () => void): void {
    this.files.onChange(listener);
  }

  close(): void {
    this.files.close();
  }
}

/**
 * TLS of a service's calls to others, when TLS_CA_FILE is set: servers are verified against its CAs (by the
 * name TLS_SERVER_NAME, when set, instead of the dialled host: replicas found by DNS are dialled by address),
 * and with TLS_CLIENT_CERT_FILE the calls present that certificate (mutual TLS). New connections take
 * rotated files; one credentials object serves every channel of the process.
 */
export class ClientTls {
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions: grpc.ChannelOptions;
  private readonly files: PemFiles;

  constructor(config: ClientTlsConfig, logger: Logger) {
    const identity = config.tlsClientCertFile !== "" || config.tlsClientKeyFile !== "";
    this.files = new PemFiles(
      {
        ca: config.tlsCaFile,
        ...(identity ? { cert: config.tlsClientCertFile, key: config.tlsClientKeyFile } : {}),
      },
      "TLS_CA_FILE/TLS_CLIENT_CERT_FILE/TLS_CLIENT_KEY_FILE",
      logger,
    );
    this.credentials = grpc.experimental.createCertificateProviderChannelCredentials(
      this.files,
      identity ? this.files : null,
    );
    this.channelOptions = config.tlsServerName
      ? {
          "grpc.ssl_target_name_override": config.tlsServerName,
          "grpc.default_authority": config.tlsServerName,
        }
      : {};
  }

  static from(config: ClientTlsConfig, logger: Logger): ClientTls | undefined {
    return config.tlsCaFile ? new ClientTls(config, logger) : undefined;
  }

  close(): void {
    this.files.close();
  }
}
