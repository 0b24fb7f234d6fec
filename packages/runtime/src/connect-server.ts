import { setMaxListeners } from "node:events";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { type ConnectNodeAdapterOptions, connectNodeAdapter } from "@connectrpc/connect-node";
import { withCors } from "./cors.js";
import type { Logger } from "./logger.js";
import { withMetricsPath } from "./metrics-server.js";
import { ServerTls, type ServerTlsConfig } from "./tls.js";

export interface ConnectServerOptions {
  name: string;
  host: string;
  port: number;
  logger: Logger;
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  maxMessageBytes: number;
  shutdownGraceMs: number;
  /** Called first on close, e.g. to drop readiness before connections drain. */
  onClose?: () => void;
  /** TLS_CERT_FILE and friends; plaintext without a certificate. */
  tls?: ServerTlsConfig;
  /** Origins whose browser pages may call (CORS); none = same-origin pages only. */
  corsOrigins?: readonly string[];
  /** Answers requests whose path is no RPC (e.g. static files); unset = 404. */
  fallback?: ConnectNodeAdapterOptions["fallback"];
  /** Whether a scrape of `/metrics` with this `authorization` header is answered; unset = every scrape. */
  mayScrape?: (authorization: string | undefined) => boolean;
}

export interface RunningConnectServer {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

const H2_PREFACE = "PRI * HTTP/2.0";

/** A duplex over `socket` whose readable side begins with `first`. */
function prepend(socket: net.Socket, first: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, encoding, callback) {
      socket.write(chunk, encoding, callback);
    },
    // nghttp2 hands over a turn's frames together: one syscall for them, not one each.
    writev(chunks, callback) {
      socket.cork();
      chunks.forEach(({ chunk, encoding }, i) => {
        socket.write(chunk, encoding, i === chunks.length - 1 ? callback : undefined);
      });
      socket.uncork();
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  duplex.push(first);
  socket.on("data", (chunk) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => duplex.destroy());
  return duplex;
}

/**
 * Connect, gRPC and gRPC-Web (binary and JSON) on one port: HTTP/2 with prior knowledge (gRPC clients,
 * grpcurl) and HTTP/1.1 (browsers, curl, gateways). The first bytes of a connection tell which it is.
 */
export async function startConnectServer(options: ConnectServerOptions): Promise<RunningConnectServer> {
  const shutdown = new AbortController();
  // connect-node adds a listener per call in progress; many concurrent calls are normal here, not a leak.
  setMaxListeners(0, shutdown.signal);
  const handler = withCors(
    connectNodeAdapter({
      routes: options.routes,
      interceptors: options.interceptors,
      readMaxBytes: options.maxMessageBytes,
      writeMaxBytes: options.maxMessageBytes,
      shutdownSignal: shutdown.signal,
      ...(options.fallback ? { fallback: options.fallback } : {}),
    }),
    options.corsOrigins ?? [],
  );
  const h1 = http.createServer(withMetricsPath(handler, options.mayScrape));
  const h2 = http2.createServer(
    { settings: { maxHeaderListSize: 64 * 1024 } },
    withMetricsPath(handler, options.mayScrape),
  );
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };
  const secure = ServerTls.from(options.tls, options.logger);
  // Ours, not http's, so Node's HTTP default of no Nagle delay must be asked for: without it, small frames
  // (a stream's events, a unary answer's trailers) waited up to 40 ms for the client's delayed ACK.
  // With TLS, ALPN tells HTTP/2 from HTTP/1.1; in plaintext, the first bytes do.
  const server = secure
    ? tlsListener(secure, (socket) => {
        track(socket);
        (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket);
      })
    : net.createServer({ noDelay: true }, (socket) => {
        track(socket);
        socket.once("data", (first: Buffer) => {
          socket.pause();
          if (first.toString("latin1", 0, H2_PREFACE.length) === H2_PREFACE) {
            // nghttp2 reads the socket's native handle, not bytes pushed back into the JS stream: hand it a
            // JS stream that starts with the bytes already read.
            h2.emit("connection", prepend(socket, first));
          } else {
            socket.unshift(first);
            h1.emit("connection", socket);
            socket.resume();
          }
        });
      });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  }).catch((err: unknown) => {
    secure?.close();
    throw err;
  });
  const port = (server.address() as net.AddressInfo).port;
  const address = `${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;
  const security = secure ? (secure.requireClientCertificate ? "mutual TLS" : "TLS") : "plaintext";
  const carriers = secure ? "HTTP/1.1 and h2 over TLS" : "HTTP/1.1 and h2c";
  options.logger.info(
    { address, security },
    `${options.name} listening (gRPC, Connect, gRPC-Web; ${carriers})`,
  );

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      options.onClose?.();
      server.close();
      h1.close();
      h1.closeIdleConnections();
      // GOAWAY: clients open no new streams here; the running ones finish, then the session closes.
      for (const session of sessions) session.close();
      const drained = new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (sockets.size === 0) {
            clearInterval(check);
            resolve();
          }
        }, 25);
        check.unref();
      });
      const timeout = new Promise<"timeout">((r) =>
        setTimeout(() => r("timeout"), options.shutdownGraceMs).unref(),
      );
      // Streams get the grace period; then every handler's signal aborts and sockets close.
      const h2close = new Promise<void>((resolve) => h2.close(() => resolve()));
      if ((await Promise.race([drained, timeout])) === "timeout") {
        shutdown.abort(new Error("server shutting down"));
        for (const s of sockets) s.destroy();
      }
      shutdown.abort(new Error("server shut down"));
      secure?.close();
      await Promise.race([h2close, new Promise((r) => setTimeout(r, 100).unref())]);
    })();
    return closing;
  };
  return { port, address, close };
}

/** A TLS listener offering h2 and HTTP/1.1 by ALPN, its certificate replaced when the files change. */
function tlsListener(secure: ServerTls, onSocket: (socket: tls.TLSSocket) => void): tls.Server {
  const server = tls.createServer(
    {
      ...secure.secureContextOptions(),
      ALPNProtocols: ["h2", "http/1.1"],
      requestCert: secure.requireClientCertificate,
      rejectUnauthorized: secure.requireClientCertificate,
      noDelay: true,
    },
    onSocket,
  );
  secure.onChange(() => server.setSecureContext(secure.secureContextOptions()));
  return server;
}
