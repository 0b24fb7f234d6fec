import * as http from "node:http";
import type * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { Logger } from "./logger.js";
import { collectProcessMetrics, metricsExposition } from "./metrics.js";

export const METRICS_PATH = "/metrics";

type AnyRequest = http.IncomingMessage | http2.Http2ServerRequest;
type AnyResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Whether a plain HTTP request asks for the metrics (GET /metrics, any query). */
export function isMetricsRequest(req: AnyRequest): boolean {
  return (req.method === "GET" || req.method === "HEAD") && (req.url ?? "").split("?")[0] === METRICS_PATH;
}

/** Answers a scrape with the registry's exposition. */
export function serveMetrics(res: AnyResponse): void {
  collectProcessMetrics();
  metricsExposition().then(
    ({ contentType, body }) => {
      (res as http.ServerResponse).writeHead(200, { "content-type": contentType });
      res.end(body);
    },
    (err: unknown) => {
      (res as http.ServerResponse).writeHead(500, { "content-type": "text/plain" });
      res.end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`);
    },
  );
}

export interface RunningMetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The HTTP/1.1 port a Prometheus scraper reads `/metrics` from, beside a service's gRPC port (grpc-js serves
 * only gRPC). `port` 0 = any free port.
 */
export async function startMetricsServer(
  host: string,
  port: number,
  logger: Logger,
): Promise<RunningMetricsServer> {
  collectProcessMetrics();
  const server = http.createServer((req, res) => {
    if (isMetricsRequest(req)) return serveMetrics(res);
    res.writeHead(404, { "content-type": "text/plain" }).end(`only ${METRICS_PATH} is served here\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  logger.info(
    { address: `${host.includes(":") ? `[${host}]` : host}:${bound}`, path: METRICS_PATH },
    "metrics listening",
  );
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * `handler` answering `GET /metrics` itself (the orchestrator's public port), to scrapers whose
 * `authorization` header `mayScrape` accepts (a public port with API keys on shows tenant labels only to an
 * admin key; a refused scrape gets 401).
 */
export function withMetricsPath<Req extends AnyRequest, Res extends AnyResponse>(
  handler: (req: Req, res: Res) => void,
  mayScrape: (authorization: string | undefined) => boolean = () => true,
): (req: Req, res: Res) => void {
  return (req, res) => {
    if (!isMetricsRequest(req)) return handler(req, res);
    if (mayScrape(req.headers.authorization)) return serveMetrics(res);
    (res as http.ServerResponse).writeHead(401, {
      "content-type": "text/plain",
      "www-authenticate": 'Bearer realm="metrics"',
    });
    res.end(
      "metrics on this port need an admin API key (authorization: Bearer KEY), or scrape METRICS_PORT\n",
    );
  };
}
